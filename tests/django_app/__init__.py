"""The Django app in a real Django project (tests/django_project), through manage.py."""
