"""The node's realtime channel to open tabs.

``hub.py`` is the transport: one WebSocket per signed-in tab, frames pushed to an
account's tabs, frames from a tab handed to whoever registered for their type.
``feeds.py`` turns domain events into frames (messages, reactions, typing, unread
counts, new posts). Calls' signalling is the next user of the same channel.
"""
