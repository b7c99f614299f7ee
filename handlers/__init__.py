"""The Lambda handlers: thin edges that parse an event, call one function of ``chunking``, shape the reply."""
