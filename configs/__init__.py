"""The packaged configuration: default.toml, one file per wiki, the topic vocabulary, the JVM log settings."""
