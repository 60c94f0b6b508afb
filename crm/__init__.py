"""The client file and everything the business knows: models, services, migrations, demo data.

Imported by `bot/` and `actions/`; knows nothing about Telegram or Rasa.
"""
