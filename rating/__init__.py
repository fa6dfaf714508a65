"""The pure rating core: catalogs, meters, tier math, packages, charges. No Kafka, no Faust,
no I/O besides reading the catalogs shipped in ``rating/catalogs``."""
