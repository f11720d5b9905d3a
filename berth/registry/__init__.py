"""The registry's HTTP API v2: client, authentication, references, manifests and their model, its config."""
