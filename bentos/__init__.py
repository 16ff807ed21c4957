"""The inference service's home: the BentoML service (`service.py`), its wiring, security and admin operations,
the packaging of the production model, and `bentofile.yaml`."""
