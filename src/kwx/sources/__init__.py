"""One module per outside system; all speak HTTP/WebSocket through injectable clients."""
