"""``manage.py loopsafe_check``."""
