"""Built-in components; importing this package registers them, in start/listing order."""

from bai.stack.components import etcd, postgres, prometheus, redis
from bai.stack.spec import register_component

for _module in (postgres, redis, etcd, prometheus):
    register_component(_module.NAME, _module.spec, replace=True)

__all__ = ["etcd", "postgres", "prometheus", "redis"]
