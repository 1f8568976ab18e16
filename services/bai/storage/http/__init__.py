"""Plain-HTTP transfers (port 6023, reached through Envoy under /storage/v1/).

The same token-authorized uploads and downloads as FileService, for clients
that speak HTTP rather than gRPC: a browser link or `fetch`, curl, wget, and
the SDK's bulk transfers (bytes cross Envoy and the proxy without being
framed into protobuf messages, which is several times cheaper).
"""
