"""A small real Django project (SQLite) for loopsafe's Django tests.

``DJANGO_SETTINGS_MODULE=testproject.settings`` with ``tests/django`` on
``sys.path``; ``tests/django/conftest.py`` sets both and creates the database.
"""
