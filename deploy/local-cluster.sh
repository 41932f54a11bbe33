#!/usr/bin/env bash
# local-cluster.sh — a meshvisor cluster of N agents on this machine, on
# 127.0.0.1, each with its own libvirt test:/// hypervisor (an XML file, no
# daemon). Everything it makes lives under .cluster/ in the repository.
#
#   deploy/local-cluster.sh up [N] [--no-deps] [--no-build]   start N agents (default 3)
#   deploy/local-cluster.sh status                            what runs, and the members
#   deploy/local-cluster.sh down [--purge]                    stop them (--purge: rm .cluster)
#
# Node K (1..N) is named nK, listens for peers on 127.0.0.1:7946+10*(K-1)
# and for clients on 127.0.0.1:7947+10*(K-1); nodes 2..N join through n1.
# Per node: .cluster/nK/{meshvisor.json,host.xml,agent.log,agent.pid,data/}.
# Certificates: .cluster/tls/ (CA, nK, operator "admin", viewer "viewer").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
BIN="$BUILD/meshvisor"
CLUSTER="$ROOT/.cluster"
TLS="$CLUSTER/tls"
HOST_IP=127.0.0.1
BASE_PEER_PORT=7946
BASE_RPC_PORT=7947
PORT_STEP=10
MAX_NODES=50
JOIN_WAIT_S=20 # how long `up` waits for every node to be seen alive by n1
STOP_WAIT_S=10 # how long `down` waits for each agent's graceful leave

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'local-cluster: warning: %s\n' "$*" >&2; }
die() {
	printf 'local-cluster: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

peer_port() { echo $((BASE_PEER_PORT + PORT_STEP * ($1 - 1))); }
rpc_port() { echo $((BASE_RPC_PORT + PORT_STEP * ($1 - 1))); }
metrics_port() { echo $((BASE_RPC_PORT + 1 + PORT_STEP * ($1 - 1))); } # Prometheus, 127.0.0.1
node_dir() { echo "$CLUSTER/n$1"; }

# Node numbers that have a directory under .cluster, ascending.
known_nodes() {
	local d
	for d in "$CLUSTER"/n*; do
		if [[ -d $d && $(basename "$d") =~ ^n([0-9]+)$ ]]; then
			echo "${BASH_REMATCH[1]}"
		fi
	done | sort -n
}

# Prints the pid of node K's agent if it is running, else fails. A pid from
# the file counts only if that process really is a meshvisor agent, so a
# recycled pid is never signalled.
agent_pid() {
	local pidfile pid
	pidfile="$(node_dir "$1")/agent.pid"
	[[ -f $pidfile ]] || return 1
	pid="$(<"$pidfile")"
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'meshvisor agent' || return 1
	echo "$pid"
}

running_nodes() {
	local k
	for k in $(known_nodes); do
		if agent_pid "$k" >/dev/null; then echo "$k"; fi
	done
}

client_env() {
	MESHVISOR_ADDR="$HOST_IP:$(rpc_port "$1")" MESHVISOR_CA="$TLS/ca.pem" \
		MESHVISOR_CERT="$TLS/admin.pem" MESHVISOR_KEY="$TLS/admin-key.pem" \
		"${@:2}"
}

# meshvisor members against node K (bounded: a wedged agent cannot hang us).
members() {
	local k="$1"
	shift
	client_env "$k" timeout 5 "$BIN" members "$@"
}

# How many members node K's table shows as alive (STATE is column 3).
alive_count() {
	members "$1" 2>/dev/null | awk 'tolower($3) == "alive" { n++ } END { print n + 0 }'
}

port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/$HOST_IP/$1") 2>/dev/null
	fi
}

port_owner() {
	if command -v ss >/dev/null 2>&1; then
		ss -Htlnp "sport = :$1" 2>/dev/null | awk '{ print $4, $6 }' | head -n 3
	fi
}

# JSON string literal for a path (escapes \ and ").
json_str() {
	local s="${1//\\/\\\\}"
	printf '"%s"' "${s//\"/\\\"}"
}

print_env_help() {
	local n="$1" exports
	exports="export MESHVISOR_ADDR=$HOST_IP:$(rpc_port 1) MESHVISOR_CA=$TLS/ca.pem MESHVISOR_CERT=$TLS/admin.pem MESHVISOR_KEY=$TLS/admin-key.pem"
	printf '%s\n' "$exports" >"$CLUSTER/env"
	echo
	echo "Use the CLI from a shell (admin = operator certificate; viewer.pem is read-only):"
	echo "    $exports"
	echo "    # or: . $CLUSTER/env"
	echo "    $BIN members"
	echo "    $BIN status"
	if ((n > 1)); then
		echo "Any node answers: MESHVISOR_ADDR=$HOST_IP:$(rpc_port 2) (n2) works as well."
	fi
	echo "Logs: $CLUSTER/nK/agent.log    Stop: deploy/local-cluster.sh down"
}

# ---- up -------------------------------------------------------------------

write_host_xml() {
	local k="$1" file="$2" cpus mem_kib
	# vary the hosts a little so capacity differs between them
	cpus=$((4 + 4 * ((k - 1) % 3)))
	mem_kib=$(((8 + 8 * ((k - 1) % 3)) * 1024 * 1024))
	cat >"$file" <<EOF
<?xml version="1.0"?>
<!-- libvirt test driver host for meshvisor node n$k, written by
     deploy/local-cluster.sh; inspect it with virsh's "list" command on
     the URI test://$file (XML comments cannot hold a double hyphen) -->
<node>
  <cpu>
    <mhz>2400</mhz>
    <model>x86_64</model>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>$((cpus / 2))</cores>
    <threads>2</threads>
    <active>$cpus</active>
  </cpu>
  <memory>$mem_kib</memory>
  <domain type="test">
    <name>n$k-web</name>
    <uuid>$(printf '6d657368-7669-736f-%04x-%012x' "$k" 1)</uuid>
    <memory unit="KiB">1048576</memory>
    <vcpu>2</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <domain type="test">
    <name>n$k-db</name>
    <uuid>$(printf '6d657368-7669-736f-%04x-%012x' "$k" 2)</uuid>
    <memory unit="KiB">2097152</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <name>n$k-batch</name>
    <uuid>$(printf '6d657368-7669-736f-%04x-%012x' "$k" 3)</uuid>
    <memory unit="KiB">524288</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <!-- 5 = VIR_DOMAIN_SHUTOFF: defined but not running -->
    <test:runstate>5</test:runstate>
  </domain>
</node>
EOF
}

write_config() {
	local k="$1" dir join=""
	dir="$(node_dir "$k")"
	if ((k > 1)); then
		join="\"$HOST_IP:$(peer_port 1)\""
	fi
	cat >"$dir/meshvisor.json" <<EOF
{
  "name": "n$k",
  "bind": "$HOST_IP",
  "peer_port": $(peer_port "$k"),
  "rpc_port": $(rpc_port "$k"),
  "join": [$join],
  "tls": {
    "ca": $(json_str "$TLS/ca.pem"),
    "cert": $(json_str "$TLS/n$k.pem"),
    "key": $(json_str "$TLS/n$k-key.pem")
  },
  "data_dir": $(json_str "$dir/data"),
  "log_level": "info",
  "libvirt_uri": $(json_str "test://$dir/host.xml"),
  "metrics": {"bind": "127.0.0.1", "port": $(metrics_port "$k")}
}
EOF
}

# True if NAME.pem and NAME-key.pem both exist. Half a pair is useless (and
# `tls cert create` never overwrites), so it is removed to be made again.
have_pair() {
	local c="$TLS/$1.pem" k="$TLS/$1-key.pem"
	[[ -f $c && -f $k ]] && return 0
	if [[ -f $c || -f $k ]]; then
		note "$1: only half of the certificate/key pair exists; making a new pair"
		rm -f "$c" "$k"
	fi
	return 1
}

make_certs() {
	local n="$1" k
	if [[ -f $TLS/ca.pem ]]; then
		note "cluster CA: reusing $TLS/ca.pem"
	else
		note "cluster CA: $BIN tls ca create --dir $TLS"
		"$BIN" tls ca create --dir "$TLS" >/dev/null ||
			die "could not create the cluster CA (see the message above)"
	fi
	for ((k = 1; k <= n; k++)); do
		have_pair "n$k" && continue
		note "node certificate n$k (IP $HOST_IP)"
		"$BIN" tls cert create --role node --name "n$k" --ip "$HOST_IP" \
			--ca-dir "$TLS" --out-dir "$TLS" >/dev/null ||
			die "could not create the certificate for n$k"
	done
	local role name
	for role in operator:admin viewer:viewer; do
		name="${role#*:}"
		have_pair "$name" && continue
		note "client certificate $name (role ${role%%:*})"
		"$BIN" tls cert create --role "${role%%:*}" --name "$name" \
			--ca-dir "$TLS" --out-dir "$TLS" >/dev/null ||
			die "could not create the $name certificate"
	done
	for name in ca.pem admin.pem admin-key.pem n1.pem n1-key.pem; do
		[[ -f $TLS/$name ]] || die "expected $TLS/$name after creating certificates; the tls subcommands wrote other file names"
	done
}

# Starts node K in the background and checks that it is still up shortly
# after (a bad config or a taken port makes it exit at once).
start_agent() {
	local k="$1" dir pid from
	dir="$(node_dir "$k")"
	mkdir -p "$dir/data"
	touch "$dir/agent.log"
	from=$(($(wc -l <"$dir/agent.log") + 2)) # this run's lines start after the marker
	{
		echo
		echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) local-cluster.sh starting n$k"
	} >>"$dir/agent.log"
	"$BIN" agent --config "$dir/meshvisor.json" </dev/null >>"$dir/agent.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/agent.pid"
	sleep 0.3
	if ! kill -0 "$pid" 2>/dev/null; then
		rm -f "$dir/agent.pid"
		echo "--- n$k's log ($dir/agent.log) from this start:" >&2
		tail -n "+$from" "$dir/agent.log" | tail -n 20 >&2
		return 1
	fi
	note "n$k: pid $pid, peer $HOST_IP:$(peer_port "$k"), rpc $HOST_IP:$(rpc_port "$k"), log ${dir#"$ROOT"/}/agent.log"
}

wait_listening() {
	local port="$1" deadline=$((SECONDS + 5))
	while ! port_in_use "$port"; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

cmd_up() {
	local n=3 deps=1 build=1 arg
	for arg in "$@"; do
		case "$arg" in
		--no-deps) deps=0 ;;
		--no-build) build=0 ;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			[[ $arg =~ ^[0-9]+$ ]] || die "up: expected a node count or --no-deps/--no-build, got '$arg'"
			n=$((10#$arg))
			;;
		esac
	done
	((n >= 1 && n <= MAX_NODES)) || die "up: node count must be 1 to $MAX_NODES, got $n"

	local running
	running="$(running_nodes | sed 's/^/n/' | paste -sd ' ' -)"
	if [[ -n $running ]]; then
		say "A local cluster is already up (running: $running); nothing to do."
		note "To start a different one: deploy/local-cluster.sh down, then up again."
		local first="${running%% *}"
		first="${first#n}"
		echo
		members "$first" || warn "could not list members from n$first"
		print_env_help "$(wc -w <<<"$running")"
		exit 0
	fi

	if ((deps)); then
		say "Step 1/6: checking Debian packages (deploy/install-deps.sh; uses apt-get only if something is missing)"
		"$ROOT/deploy/install-deps.sh"
	else
		say "Step 1/6: skipping the package check (--no-deps)"
	fi

	if ((build)); then
		say "Step 2/6: building meshvisor into ${BUILD#"$ROOT"/}/ (RelWithDebInfo, -j2)"
		cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMV_TESTS=OFF >/dev/null
		cmake --build "$BUILD" -j2 --target meshvisor
	else
		say "Step 2/6: skipping the build (--no-build)"
	fi
	[[ -x $BIN ]] || die "$BIN does not exist; build it (drop --no-build)"

	say "Step 3/6: checking that ports are free on $HOST_IP"
	local k port
	for ((k = 1; k <= n; k++)); do
		for port in "$(peer_port "$k")" "$(rpc_port "$k")" "$(metrics_port "$k")"; do
			if port_in_use "$port"; then
				die "port $port (node n$k) is already in use:$(printf '\n    %s' "$(port_owner "$port")")
    stop whatever listens there (or a cluster started from another checkout) and retry"
			fi
		done
	done
	note "ports $(peer_port 1)..$(metrics_port "$n") are free"

	say "Step 4/6: certificates in ${TLS#"$ROOT"/}/ (cluster CA, n1..n$n, operator 'admin', viewer 'viewer')"
	mkdir -p "$TLS"
	chmod 700 "$CLUSTER" "$TLS"
	make_certs "$n"

	say "Step 5/6: per-node libvirt test hosts and configs in ${CLUSTER#"$ROOT"/}/nK/"
	local dir
	for ((k = 1; k <= n; k++)); do
		dir="$(node_dir "$k")"
		mkdir -p "$dir/data"
		if [[ -f $dir/host.xml ]]; then
			note "n$k: keeping existing host.xml"
		else
			write_host_xml "$k" "$dir/host.xml"
			note "n$k: host.xml (3 VMs: n$k-web, n$k-db running; n$k-batch shut off)"
		fi
		# libvirt reads the file only when the agent connects; check it now
		if command -v virsh >/dev/null 2>&1 &&
			! virsh -q -c "test://$dir/host.xml" list --all >/dev/null 2>"$dir/virsh.err"; then
			cat "$dir/virsh.err" >&2
			die "libvirt rejects $dir/host.xml (above); fix or delete it and retry"
		fi
		rm -f "$dir/virsh.err"
		write_config "$k"
	done

	say "Step 6/6: starting $n agent(s)"
	if ! start_agent 1; then
		die "n1 exited right after starting (its log is above)"
	fi
	wait_listening "$(rpc_port 1)" || warn "n1 does not listen on $HOST_IP:$(rpc_port 1) after 5 s; going on"
	for ((k = 2; k <= n; k++)); do
		if ! start_agent "$k"; then
			warn "n$k exited right after starting (its log is above); stopping the others"
			cmd_down
			exit 1
		fi
	done

	say "Waiting up to ${JOIN_WAIT_S}s for n1 to see all $n member(s) alive"
	local deadline=$((SECONDS + JOIN_WAIT_S)) alive=0
	while :; do
		alive="$(alive_count 1)"
		((alive >= n)) && break
		if ((SECONDS >= deadline)); then
			echo
			members 1 || true
			die "after ${JOIN_WAIT_S}s n1 sees $alive of $n members alive; the agents keep running — see $CLUSTER/nK/agent.log, then 'deploy/local-cluster.sh down'"
		fi
		sleep 0.5
	done
	say "Cluster up: $n member(s) alive"
	echo
	members 1
	print_env_help "$n"
}

# ---- down -----------------------------------------------------------------

cmd_down() {
	local purge=0 arg
	for arg in "$@"; do
		case "$arg" in
		--purge) purge=1 ;;
		*) die "down: unknown argument '$arg' (only --purge)" ;;
		esac
	done
	[[ -d $CLUSTER ]] || {
		say "No local cluster (${CLUSTER#"$ROOT"/}/ does not exist)."
		return 0
	}

	local k pid
	local -a pids=() names=()
	for k in $(known_nodes); do
		if pid="$(agent_pid "$k")"; then
			say "n$k: SIGTERM to pid $pid (graceful leave)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			names+=("n$k")
		fi
	done
	((${#pids[@]})) || say "No agents running."

	local i deadline
	for i in "${!pids[@]}"; do
		pid="${pids[$i]}"
		deadline=$((SECONDS + STOP_WAIT_S))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			warn "${names[$i]} (pid $pid) still running after ${STOP_WAIT_S}s; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		else
			note "${names[$i]} stopped"
		fi
	done
	for k in $(known_nodes); do
		rm -f "$(node_dir "$k")/agent.pid"
	done

	if ((purge)); then
		say "Removing ${CLUSTER#"$ROOT"/}/ (certificates, configs, logs)"
		rm -rf "$CLUSTER"
	else
		note "logs kept in ${CLUSTER#"$ROOT"/}/nK/agent.log (down --purge removes everything)"
	fi
}

# ---- status ---------------------------------------------------------------

cmd_status() {
	[[ $# -eq 0 ]] || die "status: takes no arguments"
	local nodes
	nodes="$(known_nodes | tr '\n' ' ')"
	if [[ -z $nodes ]]; then
		say "No local cluster (start one with: deploy/local-cluster.sh up)."
		return 1
	fi
	local k pid up=0 total=0 first=""
	say "Agents (from ${CLUSTER#"$ROOT"/}/nK/agent.pid):"
	for k in $nodes; do
		total=$((total + 1))
		if pid="$(agent_pid "$k")"; then
			up=$((up + 1))
			[[ -n $first ]] || first="$k"
			note "n$k  running  pid $pid  peer $HOST_IP:$(peer_port "$k")  rpc $HOST_IP:$(rpc_port "$k")  metrics http://127.0.0.1:$(metrics_port "$k")/metrics"
		else
			note "n$k  stopped"
		fi
	done
	if [[ -z $first ]]; then
		say "No agent is running."
		return 1
	fi
	say "Members as n$first sees them:"
	members "$first" || warn "could not list members from n$first"
	[[ -f $CLUSTER/env ]] && note "client environment: . $CLUSTER/env"
	((up == total))
}

main() {
	local cmd="${1:-}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	-h | --help | help)
		usage
		;;
	"")
		usage >&2
		exit 2
		;;
	*)
		printf 'local-cluster: unknown command %s\n\n' "'$cmd'" >&2
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
