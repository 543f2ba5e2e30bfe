# Shared by the set-up scripts that cache tools under helora's cache dir (install-cuda.sh,
# cuda-stubs.sh): sourced, not run. Defines `die`, `setup_args` and `helora_cache_dir`.

die() {
    echo "error: $*" >&2
    exit 1
}

# Reads the script's one optional argument into `mode`: "env" for --env, else `default`;
# -h/--help prints the script's header comment (lines 2..`help_end` of it) and exits.
# Usage: setup_args DEFAULT HELP_END "$@"
setup_args() {
    local default=$1 help_end=$2
    shift 2
    local script="${BASH_SOURCE[1]}"
    help() { sed -n "2,${help_end}p" "$script" | sed 's/^# \{0,1\}//'; }
    mode=$default
    case "${1:-}" in
        "") ;;
        --env) mode=env ;;
        -h | --help)
            help
            exit 0
            ;;
        *)
            echo "error: unknown argument '$1'" >&2
            help >&2
            exit 2
            ;;
    esac
}

# The engine's rule for its cache (the default model lives there too): HELORA_CACHE_DIR,
# else the user's cache dir + helora.
helora_cache_dir() {
    if [[ -n "${HELORA_CACHE_DIR:-}" ]]; then
        echo "$HELORA_CACHE_DIR"
    elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
        echo "$XDG_CACHE_HOME/helora"
    elif [[ -n "${HOME:-}" ]]; then
        echo "$HOME/.cache/helora"
    else
        die "no cache directory is known here; set HELORA_CACHE_DIR"
    fi
}
