"""Posts: notes and articles, their content, visibility and interactions."""
