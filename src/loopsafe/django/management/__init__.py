"""Django management commands of loopsafe."""
