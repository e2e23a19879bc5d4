#!/bin/bash
# A guest's life, link layout (see lifecycle.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT="link"
. "$(dirname "$0")/lifecycle.sh"
