"""From a parsed request to typed output: the request values, the caps on them, prompt assembly,
the thinking split, forced tool calls, and the run that leases a runner from the scheduler.

The API and the D-Bus object call in; this package calls the scheduler, the store and the
runner's request types, never the API. Nothing is imported here, so a caller that needs one
module does not pay for the rest.
"""
