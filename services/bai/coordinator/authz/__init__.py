"""ext_authz: Envoy asks the coordinator whether a request without a valid cookie may pass."""
