"""How a release is built, shipped, rolled back and sized (deploy code and templates).

Nothing here imports the web app: releases depend on no part of ``service``.
"""
