from fixtures.broker import broker, embedded_broker  # noqa: F401
