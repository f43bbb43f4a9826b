# Sourced by compose/compose.sh: the passwords of the stateful services (Redis, PostgreSQL).
#
# Why they are kept per compose project, not per checkout: the data lives in named volumes,
# and volumes belong to the compose project (mlsp-batch, mlsp-e2e-batch-<tag>,
# mlsp-bench-batch, a starter's own name), which every checkout on the machine shares.
# PostgreSQL keeps the password its volume was made with, so every checkout that uses a
# project must use that project's password: a second clone, or a checkout whose .mlsp/ was
# removed (git clean -fdx), then works with no action and finds its rows. So the passwords
# are made once per project and kept (mode 600) in
#   ${XDG_STATE_HOME:-~/.local/state}/mlsp/<project>/secrets.env
# and forgotten when the project's volumes are removed (`down --volumes`, `make down WIPE=1`).
# (A start step that only detects a mismatch and refuses would make the user act on every
# second clone; the refusal below is kept for the one case that cannot be solved here.)
#
# Variables set by the caller (or .env) win, and a project's first start keeps them.
# Checkouts made before this kept them in .mlsp/secrets.env: a project that has none yet
# takes that checkout's, the password its volumes were made with.
# When a project has no passwords here but its PostgreSQL volume exists (the state folder
# was removed, or another user made it), the password is unknown: commands that start
# containers stop with one line naming the two ways out; the others (down, ps, logs...)
# run with passwords that are not kept.
#
# Redis needs none of this: it takes its password from the command line at every start and
# keeps none on its volume (the append-only file holds data commands only).

# The services' password variables, made as 32 hex digits.
SECRET_NAMES=(REDIS_PASSWORD POSTGRES_PASSWORD)

# parse_compose_args ARGS...: sets compose_project (the project docker compose will use:
# -p, else COMPOSE_PROJECT_NAME, else the first compose file's `name:`, else its folder),
# compose_file (the first -f), compose_command (the subcommand) and compose_command_args.
parse_compose_args() {
  local project="" file=""
  while [ $# -gt 0 ]; do
    case $1 in
      -p | --project-name) project=${2:-}; shift ;;
      --project-name=*) project=${1#*=} ;;
      -p?*) project=${1#-p} ;;
      -f | --file) [ -n "$file" ] || file=${2:-}; shift ;;
      --file=*) [ -n "$file" ] || file=${1#*=} ;;
      --profile | --env-file | --project-directory | --ansi | --progress | --parallel) shift ;;
      -*) ;;
      *) break ;;
    esac
    shift
  done
  compose_file=${file:-compose.yaml}
  compose_command=${1:-}
  compose_command_args=("${@:2}")
  project=${project:-${COMPOSE_PROJECT_NAME:-}}
  if [ -z "$project" ] && [ -f "$compose_file" ]; then
    project=$(sed -n 's/^name:[[:space:]]*//p' "$compose_file" | head -n1 | tr -d "\"'")
  fi
  if [ -z "$project" ]; then
    project=$(basename "$(cd "$(dirname "$compose_file")" 2>/dev/null && pwd || echo default)")
  fi
  # As docker compose normalises it: lower case, letters, digits, dashes and underscores.
  compose_project=$(printf '%s' "$project" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')
}

project_secrets_file() { # the file of the parsed project's passwords
  echo "${XDG_STATE_HOME:-${HOME:?set HOME or XDG_STATE_HOME}/.local/state}/mlsp/$compose_project/secrets.env"
}

# keep_first NEW FILE: NEW becomes FILE unless FILE exists (a start running at the same
# moment made it first: its passwords are the ones in use); NEW is removed either way.
keep_first() { ln "$1" "$2" 2>/dev/null || true; rm -f "$1"; }

random_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

starts_containers() { # whether the parsed subcommand starts containers
  case $compose_command in up | run | create | start | restart) return 0 ;; esac
  return 1
}

removes_volumes() { # whether the parsed subcommand is `down` with --volumes
  [ "$compose_command" = down ] || return 1
  local arg
  # (The +-form: bash 3.2, macOS's, calls an empty array unbound under set -u.)
  for arg in ${compose_command_args[@]+"${compose_command_args[@]}"}; do
    case $arg in -v | --volumes | --volumes=true) return 0 ;; esac
  done
  return 1
}

# The command that removes the parsed project's volumes, as the user would type it.
wipe_command() {
  local pattern named
  case $compose_file in
    *patterns/*/compose.yaml)
      pattern=$(basename "$(dirname "$compose_file")")
      named=$(sed -n 's/^name:[[:space:]]*//p' "$compose_file" | head -n1)
      if [ "$named" = "$compose_project" ]; then
        echo "make down PATTERN=$pattern WIPE=1"
      else
        echo "COMPOSE_PROJECT_NAME=$compose_project make down PATTERN=$pattern WIPE=1"
      fi ;;
    *) echo "./compose/compose.sh -p $compose_project down --volumes" ;;
  esac
}

# use_project_secrets ROOT: exports the parsed project's passwords (see the top of this file);
# exits 1 with one line when they are unknown and the command would start containers.
use_project_secrets() {
  local root=$1 file legacy name
  file=$(project_secrets_file)
  legacy=$root/.mlsp/secrets.env
  if [ ! -f "$file" ]; then
    if [ -f "$legacy" ]; then
      mkdir -p "$(dirname "$file")"
      (umask 077 && cp "$legacy" "$file.tmp.$$") && keep_first "$file.tmp.$$" "$file"
    elif [ -z "${POSTGRES_PASSWORD:-}" ] &&
      docker volume inspect "${compose_project}_postgres-data" >/dev/null 2>&1; then
      if starts_containers; then
        echo "compose.sh: the database in volume ${compose_project}_postgres-data was made" \
          "with a password that $file no longer holds: start empty with" \
          "\`$(wipe_command)\` (deletes its data), or set POSTGRES_PASSWORD to the old" \
          "password (it is kept from then on)." >&2
        exit 1
      fi
      for name in "${SECRET_NAMES[@]}"; do
        [ -n "${!name:-}" ] || export "$name=$(random_secret)"
      done
      return
    else
      mkdir -p "$(dirname "$file")"
      (umask 077
       for name in "${SECRET_NAMES[@]}"; do
         echo "$name=${!name:-$(random_secret)}"
       done >"$file.tmp.$$") && keep_first "$file.tmp.$$" "$file"
    fi
  fi
  while IFS='=' read -r name value; do
    [ -n "${!name:-}" ] || export "$name=$value"
  done <"$file"
}

# forget_project_secrets: removes the parsed project's passwords (its volumes are gone).
forget_project_secrets() {
  local file
  file=$(project_secrets_file)
  rm -f "$file"
  rmdir "$(dirname "$file")" 2>/dev/null || true
}
