"""rasa-sdk custom actions: thin entry points that read and write the CRM through `crm/`.

Run with `python -m rasa_sdk --actions actions`.
"""

from actions import catalog, company, complaints, desk, language, leads, meetings, orders, privacy  # noqa: F401,E501  (registers them)
