"""The grading tests' own scenario subset and student servers are inputs, not tests."""

collect_ignore = ["scenarios", "students"]
