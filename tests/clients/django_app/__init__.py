"""A minimal Django app for tests/clients/test_django.py: authors, their books, and a counter."""
