"""The WSGI entry point gunicorn and ``flask --app service.wsgi`` load."""

from service import create_app

app = create_app()
