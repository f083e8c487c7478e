"""pcapaudit real-traffic lab: network namespaces, real servers/middleboxes and clients.

See tests/lab/README.md. Main entry points:
    Lab                      the lab (context manager)
    vendor_services, corp_services, https, tls   listener specs for Lab.start_services
    hosts                    the address plan (HOSTS, DEVICE, RESOLVER, ...)
"""
from . import hosts
from .topology import (IFACES, Lab, LabError, cleanup_stale, corp_services, forward_filter, https, nat_redirect, tls,
                       vendor_services)

__all__ = ["Lab", "LabError", "IFACES", "hosts", "vendor_services", "corp_services", "https", "tls",
           "forward_filter", "nat_redirect", "cleanup_stale"]
