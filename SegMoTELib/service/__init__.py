"""The engine as an HTTP service (`segmote serve`) and its one client.

`client` (stdlib + numpy, no torch) is what Slicer and `segmote segment --server` use; `app`,
`store`, `session`, `host`, `gate` and `jobs` make the server (FastAPI + uvicorn); `codec` is the
wire format both sides share. Importing this package imports neither torch nor FastAPI.
"""
