"""The data command line: inspect, export, import and copy the items of a
running service, on the SDK (``commands`` is its entry)."""
