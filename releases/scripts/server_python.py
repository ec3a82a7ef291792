"""The marker environment of the server's python3 (what pip there would evaluate), and
its libc, as one JSON object. Run by the server's python3 (stdlib only)."""

import json
import os
import platform
import sys

print(
    json.dumps(
        {
            "implementation_name": sys.implementation.name,
            "implementation_version": platform.python_version(),
            "os_name": os.name,
            "platform_machine": platform.machine(),
            "platform_release": platform.release(),
            "platform_system": platform.system(),
            "platform_version": platform.version(),
            "python_full_version": platform.python_version(),
            "platform_python_implementation": platform.python_implementation(),
            "python_version": ".".join(platform.python_version_tuple()[:2]),
            "sys_platform": sys.platform,
            "libc": platform.libc_ver(),
        }
    )
)
