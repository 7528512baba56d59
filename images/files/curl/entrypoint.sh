#!/bin/sh
# The curlimages/curl entrypoint: arguments that start with "-", or a first word that is no
# command, are options for curl; anything else is run as given (e.g. `sh -c ...`).
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ]; then
  set -- curl "$@"
fi
exec "$@"
