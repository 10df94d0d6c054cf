"""The one aiohttp app: metrics, health, reload, pages and the JSON API."""
