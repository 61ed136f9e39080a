"""Turn a compose stack file into Docker Engine API specs, the way `docker stack deploy` does.

deploybot talks to the Engine API directly, so it redoes what docker/cli's `cli/compose/loader`
and `cli/compose/convert` do: the same interpolation, validation, ServiceSpec and network bodies,
names and labels. A user's stack file means here what it means with the CLI; the few deliberate
differences (defaults for a Swarm without IPVS, errors instead of silently dropped settings) are
noted where they happen.

`loading` reads a file (YAML, `interpolation`, `schema`, `values`) into a `model` StackFile;
`services` (with `container` and `file_objects`, the configs and secrets) and `networks`
convert it. All of that is pure: no Docker calls, and files (env files, the files of configs
and secrets) only through the reader the caller passes, which reads the deployed commit.
`platform` alone asks the Swarm (the ports other stacks hold, the external objects).
"""

from deploybot.runner.stack.loading import parse_stack_file, single_service_stack
from deploybot.runner.stack.model import (
    IMAGE_LABEL,
    NAMESPACE_LABEL,
    BuildSpec,
    NetworkSpec,
    ServiceSpec,
    StackFile,
    StackFileError,
)
from deploybot.runner.stack.networks import network_specs
from deploybot.runner.stack.services import service_specs

__all__ = [
    "IMAGE_LABEL",
    "NAMESPACE_LABEL",
    "BuildSpec",
    "NetworkSpec",
    "ServiceSpec",
    "StackFile",
    "StackFileError",
    "network_specs",
    "parse_stack_file",
    "service_specs",
    "single_service_stack",
]
