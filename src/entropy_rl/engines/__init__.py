"""External engines that run this suite's protocol at scale (optional extras, imported lazily)."""
