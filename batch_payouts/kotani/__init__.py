"""The Kotani Pay v3 API: client, wire models, webhook signatures."""
