"""The OpenAI wire protocol: typed requests, the client backend and `lwlocal serve`."""
