"""The wire contract that the itemstore SDK and service share: how JSON
numbers, keys, collection names and limits look on the wire. No transport
code and nothing of either side lives here (``openapi.yaml`` is the full text).
"""
