"""Audio and video calls: the relay, and later signalling."""
