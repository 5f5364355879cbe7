"""Direct messages: conversations between people on this node and others."""
