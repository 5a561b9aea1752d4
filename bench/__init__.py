"""Load generation for itemstore: the wrk harness (``python -m bench.run``) and a locustfile."""
