"""The HTTP edge: REST and operations resources, auth guards, error mapping, middleware.

Resources parse a request, call the domain (``mosic.core``) and shape the answer; nothing
below this package knows about HTTP.
"""
