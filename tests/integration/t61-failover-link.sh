#!/bin/bash
# failover between two hosts over ssh and rsync, link layout (see failover.sh).
# shellcheck source-path=SCRIPTDIR disable=SC1091,SC1094,SC2034
. "$(dirname "$0")/lib.sh"
LAYOUT="link"
. "$(dirname "$0")/failover.sh"
