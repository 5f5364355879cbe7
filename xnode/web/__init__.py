"""The HTTP side of the node: HTML pages now; federation and API endpoints later."""
