# schemathesis hooks of tests/worker_openapi.rs (loaded through SCHEMATHESIS_HOOKS): a TOML
# body is text, sent as it was generated.
import schemathesis

schemathesis.serializer.alias("application/toml", "text/plain")
