/*
 * swim.c — cluster membership: SWIM with the three Lifeguard extensions, as
 * a pure state machine (see meshvisor/swim.h for the calling contract).
 *
 * THE ALGORITHM
 *
 * Failure detection (SWIM, Das et al. 2002). Time is cut into protocol
 * periods of probe_interval_ms. Each period this node probes one member:
 * it sends a PING and waits probe_timeout_ms for the ACK. If none comes, it
 * picks k = indirect_probes random alive members and sends each a PING_REQ;
 * they PING the target themselves and relay its ACK back. If the period
 * ends with no ACK, direct or relayed, the target becomes SUSPECT (not DEAD:
 * the paper's suspicion sub-protocol) and the suspicion is gossiped. A
 * suspect that is still suspected when its suspicion timer runs out becomes
 * DEAD. Targets are taken from the member list in a shuffled round-robin
 * order, reshuffled each time the list has been walked; a new member is
 * swapped in at a random position. This bounds the time until any given
 * member is probed by a live node (the paper's "time-bounded completeness").
 *
 * Incarnations. Every member owns a counter that only it increments. A
 * member that hears itself suspected (or reported dead) refutes by raising
 * its incarnation above the reported one and gossiping ALIVE. The order of
 * precedence, for a member other than us (memberlist's, which is SWIM's):
 *   ALIVE(i)   overrides SUSPECT/ALIVE(j) iff i > j; DEAD/LEFT(j) iff i > j
 *   SUSPECT(i) overrides ALIVE(j) iff i == j; a SUSPECT(i == j) about a
 *              member already suspect is a confirmation (Lifeguard)
 *   DEAD(i)    overrides ALIVE/SUSPECT(j) iff i == j, and on another
 *              member's word only once our own check failed (below)
 *   LEFT(i)    is DEAD asserted by the member itself (origin == name); it
 *              overrides ALIVE/SUSPECT/DEAD(j) iff i == j or i == j + 1
 *              (swim_leave), and a DEAD never overrides LEFT, so a
 *              graceful leave is never reported as a death. With signed
 *              claims, a LEFT relayed by anyone but the member needs its
 *              proof of leaving; without one it is a DEAD(j) from the
 *              relay, checked (A HOST SPEAKS ONLY FOR ITSELF, below).
 * A SUSPECT or DEAD above the incarnation we hold (i > j), which SWIM and
 * memberlist take, is refused here: only the member raises its own
 * incarnation (A HOST SPEAKS ONLY FOR ITSELF, below).
 * Updates about a member we do not know are taken only when ALIVE.
 * A PING or PING_REQ from a node we do not know adds it ALIVE at
 * incarnation 0 (it is evidently up, and 0 is below anything it may hold,
 * so any real update overrides it) unless the message carries an update
 * about its sender, which then decides (a leaver is not brought back).
 *
 * Dissemination. Every state change we accept is queued once per member (a
 * newer change replaces the older one) and piggybacked on every message we
 * send: PING, ACK, PING_REQ, NACK. Each update is sent at most
 * retransmit_mult * ceil(log10(N + 1)) times, fewest-sent first (newest
 * first among equals), at most max_updates_per_msg per message. The queue
 * is a set of lists bucketed by transmit count, so picking is O(budget).
 * A member's own ALIVE is never spent on that member (it stays queued for
 * the others). Two updates ride along outside the budget and cost no
 * transmission: our suspicion of the recipient (buddy system, below), and
 * in a relayed ACK or a NACK the target's state as the helper holds it
 * (unless SUSPECT), in an ACK to a PING that carried news about us our own:
 * a requester holding a refuted suspicion learns the refutation from the
 * answer itself, even when the refuter's own copies were lost.
 * Besides the probes, every gossip_interval_ms we send the pending updates
 * to gossip_fanout random members; such a message is an ACK with seq 0 (an
 * "unsolicited ack": it carries gossip and asks for nothing back).
 *
 * Lifeguard (Dadgar et al. 2018), all three parts:
 *  1. Local Health Aware Probe. An awareness score 0..awareness_max
 *     multiplies the protocol period and the probe timeout by (score + 1).
 *     +1 for a failed probe, +1 for each PING_REQ helper that did not send
 *     the NACK it owed us, +1 when we must refute a suspicion about
 *     ourselves, +1 or more when the glue tells us our own loop stalled
 *     (swim_local_health_add); -1 for a successful probe. A helper whose relayed PING gets
 *     no ACK within 80% of probe_timeout_ms sends the requester a NACK, so a
 *     requester that hears neither ACK nor NACK learns that the fault is
 *     likely its own.
 *  2. Local Health Aware Suspicion. The suspicion timeout starts at
 *     max = suspicion_max_mult * min and falls towards
 *     min = suspicion_min_mult * max(1, log10 N) * probe_interval_ms as
 *     independent confirmations (distinct origins suspecting the same member
 *     at the same incarnation) come in, logarithmically, reaching min at
 *     k = min(indirect_probes, N - 2) confirmations
 *     (swim_suspicion_timeout_ms). A new confirmation is re-gossiped, with
 *     its own origin, so that the others can count it too.
 *  3. Buddy system. A PING to a member we hold SUSPECT always carries that
 *     suspicion, so the member can refute it in the ACK itself (and one to
 *     a member we hold DEAD its death: see FALSE DEATHS HEAL).
 *
 * Push-pull (memberlist, by digest). Every push_pull_interval_ms (scaled
 * up above 32 members like memberlist's pushPullScale) we reconcile our
 * member table with one random member's, and both merge. This is what
 * makes two sides of a healed partition meet again and what teaches a
 * restarted node that the cluster thinks it dead at incarnation X. We
 * send a digest of the table, not the table (PUSH-PULL BY DIGEST below);
 * a join still sends and gets whole tables.
 *
 * WHERE WE DEPART FROM THE PAPERS (and from memberlist)
 *  - No separate round-trip-time based timeouts; the probe timeout is the
 *    configured one scaled by awareness only.
 *  - A failed probe counts +1 *and* +1 per missing NACK (memberlist counts
 *    only missing NACKs when helpers exist): a node that cannot reach
 *    anyone slows down faster; a real death costs one point, paid back by
 *    the next successful probe.
 *  - The push-pull partner is drawn from every member that has not LEFT,
 *    DEAD ones included. SWIM and memberlist only talk to live members, so
 *    after a full partition each side holds the other dead and nothing
 *    would ever cross; drawing the dead now and then heals it (memberlist
 *    leaves this to Serf's reconnect loop).
 *  - A suspicion nobody confirms ends with a last-chance probe (direct and
 *    through helpers). If helpers were asked and not one answered, not even
 *    with a NACK, the fault is most likely ours — we are the one cut off —
 *    so we keep suspecting (and raise our awareness) instead of declaring
 *    the member DEAD: a death on one isolated node's word would spread when
 *    it reconnects and get a healthy host failed over. When we learn that
 *    the others held US dead, our unconfirmed suspicions restart from zero
 *    for the same reason.
 *  - A member we hold DEAD that talks to us gets our DEAD record back in a
 *    gossip-only ACK, so its refutation reaches us directly even when all
 *    gossip copies of it missed us (seen with a restart 50 ms after the
 *    death verdict at N=100).
 *  - Learning a new member, or one back from DEAD/LEFT (a restarted host),
 *    moves the next push-pull to 2-5 s from now, at most once per base
 *    interval: after a join storm or a rejoin, gaps left by ALIVEs gossiped
 *    on a small retransmit budget heal in seconds, not minutes.
 *  - A DEAD learned by push-pull is taken as SUSPECT (memberlist does the
 *    same), so one stale table cannot kill a healthy member: it gets a
 *    suspicion it can refute.
 *  - A member that sees itself ALIVE at a higher incarnation, or at its own
 *    incarnation but another address, refutes too: that is its own previous
 *    life (restart under the same name, possibly at a new address).
 *  - Joining is a push-pull with join=true to each seed address, retried
 *    with exponential backoff; there is no separate join message. The
 *    joiner queues its own ALIVE when the reply is in (after re-queueing
 *    the table it received, up to 256 members: see JOIN STORMS; so it
 *    goes first), as memberlist does: the
 *    seed's copies alone missed a member in ~3% of 5-node joins, which
 *    then waited for the next push-pull (30 s).
 *  - LEFT members keep being answered (ACKs) and keep gossiping until the
 *    LEFT update has been sent retransmit-limit times (swim_leave_done()).
 *  - Stale suspicions are answered. A member told it is SUSPECT/DEAD at an
 *    incarnation it has already refuted re-queues its ALIVE (fresh transmit
 *    budget) and sends it straight back to the sender. With 10% loss an
 *    epidemic of λ log N copies still misses a node now and then; without
 *    this, that node would time the suspicion out into a false death.
 *  - Last-chance probe. When a suspicion times out with no independent
 *    confirmation (only its origin vouches for it), we first probe the
 *    suspect ourselves, directly and through k helpers, carrying the
 *    suspicion (buddy). An ACK restarts the suspicion clock (the refutation
 *    is on its way); silence for one protocol period makes it DEAD. A real
 *    death confirmed by others is not delayed; a lone false suspicion now
 *    needs two full probes to fail. Together these two give zero false
 *    deaths at 10% loss in our runs with suspicion_min_mult = 1 (the
 *    default is now 4: see FAST ON PROOF, PATIENT ON SILENCE).
 *  - Verification probes (not in Lifeguard). Lifeguard counts as
 *    confirmations the suspicions other members raise in the course of
 *    their own round-robin probing; at N = 100 each member probes a given
 *    one about once per 100 s, so the suspicion sat near its maximum and
 *    a crash took ~5.6 s (p50) to be DEAD everywhere. Instead a member that
 *    learns a new suspicion by gossip probes the suspect itself at once,
 *    with probability min(1, 2k / (N - 2)), so that ~2k members do so per
 *    suspicion: a PING carrying the suspicion (it can refute in the ACK)
 *    and k PING_REQs, one protocol period to answer. If no ACK came and at
 *    least one helper sent its NACK (so we can reach others and they
 *    cannot reach the suspect either), the failure is our own suspicion:
 *    it counts, and is gossiped with us as origin, as an independent
 *    confirmation. Evidence stays independent (each confirmer failed to
 *    reach the suspect itself, through helpers of its own choosing), a
 *    member with awareness > 0 does not verify (Lifeguard's reason: its
 *    failures say more about it than about the suspect), and an ACK is
 *    remembered, so that the deadline restarts the clock rather than kill.
 *    The k confirmations now come within ~1.5 s and the timeout falls to
 *    its minimum. The cost is ~2k probes per suspicion, nothing in steady
 *    state.
 *
 * FAST ON PROOF, PATIENT ON SILENCE (issue 11)
 *  Silence is not evidence of much: 36% loss on every path, a 5 s SIGSTOP
 *  or a host that drops half its packets all look like a crash for a
 *  while. So the suspicion timeout is Serf's (suspicion_min_mult 4: 4 s at
 *  N <= 10, 8 s at N = 100, up to 6x that unconfirmed). A refusal is
 *  evidence: a TCP RST or ICMP port unreachable says the member's host is
 *  up and nothing listens on its peer port. (The transport believes an
 *  ICMP error only if it quotes one of our recent datagrams, under our
 *  key to that member, which an off-path forger would have to guess, and
 *  only for a member whose datagrams it heard lately: docs/transport.md.)
 *  Alone it may still mislead, so:
 *  - swim_peer_refused(name) on an ALIVE member makes it SUSPECT at once
 *    (cause "connection refused", our own suspicion, gossiped) and sends
 *    an immediate probe: a PING carrying the suspicion and k PING_REQs
 *    (swim_check_send, as a verification probe).
 *  - A helper whose relayed PING is refused (the glue calls the same
 *    swim_peer_refused on its side) answers the PING_REQ at once with a
 *    NACK with refused = true, and starts no suspicion of its own: the
 *    suspicion is the requester's.
 *  - A refused NACK counts only from a helper we asked for that very
 *    probe (its seq, its target; the helpers are remembered per
 *    suspicion). Our refusal plus one such NACK is a proof: DEAD
 *    SWIM_REFUSED_DEAD_PERCENT (50%) of a probe interval later (500 ms),
 *    time enough for a live member behind a bad path to hear the
 *    suspicion and refute, unless an ACK to that probe came (then the
 *    proof is void and the suspicion runs its normal course). A refusal
 *    nobody else confirms is an ordinary suspicion. A member that was
 *    already SUSPECT (someone else's suspicion) and refuses us gets our
 *    independent confirmation at once.
 *  At N = 5 in the simulator (bench_sim_membership issue11): kill on a
 *  live host -> DEAD everywhere p50 ~0.8 s; silent crash p50 ~5.3 s (2
 *  expected confirmations, SWIM_SUSPICION_CONFIRMATIONS); 0 false deaths
 *  at 36% loss; no 4 s pause declared dead (750 pauses over 150 seeds in
 *  test_pause_4s_never_dead's loop); 5 s is the edge (0 of 10 seeds in
 *  the bench, one CI seed out of many declared it).
 *
 * PUSH-PULL BY DIGEST (issue 12)
 *  memberlist ships the whole table both ways: at N = 2,000 that made
 *  push-pull 85% of idle membership traffic (768 B/node/s), growing as
 *  N / log N. Now the table is cut into B buckets by a hash of the name
 *  (B a power of two, one per SWIM_DIGEST_PER_BUCKET = 32 members, at
 *  most SWIM_DIGEST_OWN_MAX = 256: 39 members a bucket at N = 10,000),
 *  and a round is:
 *    1. A -> B  PUSH_PULL, digest = B hashes, one per bucket: the XOR of
 *       a 64-bit hash of (name, addr, incarnation, state) of each ALIVE or
 *       SUSPECT member in it (DEAD and LEFT count 0: tombstones that the
 *       merge does not copy across must not keep two tables apart) (formula in swim.h: swim_digest_entry, swim_digest_bucket;
 *       the string hashes are the cached ones of the string table, so a
 *       digest costs O(N) word operations, no string is read).
 *    2. B compares with its own digest over A's bucket count. Equal
 *       everywhere: B sends nothing (the idle case: one 2 KiB message per
 *       interval at N = 10,000). Else B -> A PUSH_PULL_REPLY with its
 *       members of the differing buckets and want = those buckets.
 *    3. A merges them, then A -> B PUSH_PULL_REPLY with its own members of
 *       the wanted buckets (after the merge: each record the newer of the
 *       two), which B merges.
 *  After 3 both hold, for every differing bucket, the merge of both
 *  tables: the same outcome as a full push-pull, at the cost of the
 *  buckets that differ. A healed partition or a join storm differs in
 *  every bucket and pays a full table, as before; convergence after a
 *  heal is unchanged (test_sim_faults: test_partition_heals_by_digest).
 *  Nothing is kept between the steps (each is answered from the message
 *  alone), a digest is at most SWIM_DIGEST_MAX buckets (the codec and
 *  swim_msg_ok reject more, a count that is not a power of two and
 *  wanted buckets out of range), and an answer is at most our own table:
 *  a peer cannot make us hold memory or send more than a full push-pull
 *  would. A member's bucket and hash are computed by each side with the
 *  sender's bucket count, so peers with different N agree.
 *  An older peer ignores the digest fields: it answers our PUSH_PULL
 *  (empty table) with its whole table, which we merge, and sends its own
 *  rounds as full push-pulls, which we answer with our whole table. Such
 *  exchanges work and converge; the ones we start only pull.
 *
 * JOIN STORMS CONVERGE IN SECONDS (issue 12)
 *  2,000 nodes started within a second, each through 3 seeds, took 74 s to
 *  one view: the seeds' join replies hold whoever had joined so far, and
 *  the rest spread by gossip at 16 updates a message. So a push-pull round
 *  that finds SWIM_STORM_MIN (8) or more members learned since the
 *  previous round starts a storm: rounds every 0.5-1.5 s instead of the
 *  interval, until SWIM_STORM_QUIET (3) rounds in a row learned fewer.
 *  Anti-entropy between random pairs spreads the union of the tables in
 *  O(log N) rounds, so 2,000 reach one view in ~7 s. A single join does
 *  not start a storm (one member learned): it only brings one round
 *  forward (swim_member_learned), as before; the storm's rounds are
 *  digests, so once tables agree they cost a digest each.
 *  Above SWIM_PP_REGOSSIP_MAX (256) members, an ALIVE learned by push-pull
 *  is not queued for gossip (swim_regossip), unless it is the sender's own
 *  (a joiner reaching its seed) or refutes a suspicion or death we held
 *  (that one must outrun suspicion timeouts): push-pulls spread it. Re-gossiping a
 *  table of 10,000 held 20 B per member in every node's broadcast queue
 *  and kept every node sending 16 stale updates a message for ~13
 *  minutes after a storm. At 256 members or fewer nothing changed.
 *
 * FALSE DEATHS HEAL IN SECONDS
 *  A member held DEAD is no longer probed round robin nor gossiped to,
 *  and would learn of its death only by push-pull (one lasted 133 s). So
 *  every SWIM_DEAD_PROBE_PERIODS (3) protocol periods we send one random
 *  DEAD member a PING that carries its DEAD record (it rides in the buddy
 *  slot of swim_piggyback): a live one refutes, incarnation + 1, and its
 *  ACK carries the refutation back (the "news about us" rule). Cost: one
 *  PING per 3 periods per node whatever the number of dead, until reaped.
 *  The rule for the answer: an ACK, or an ALIVE at the incarnation we hold
 *  it DEAD at, revives nothing (ALIVE(i) overrides DEAD(j) iff i > j):
 *  only the member's own refutation does.
 *
 * A GRAY HOST DOUBTS ITSELF
 *  A host that drops half its packets fails most of its probes, and its
 *  suspicions of healthy peers are its own fault. Poor local health
 *  (swim_poor_health): awareness at half its cap or more, or more than
 *  half of our last 16 probes failed (at least 4). Such a node never declares a
 *  member DEAD on its own suspicion timeout with fewer than k =
 *  min(indirect_probes, N - 2) independent confirmations: it keeps
 *  suspecting, restarts the clock and gossips the suspicion again (a member
 *  that missed it, having rebooted since, verifies it and confirms: else
 *  a real death seen only by poor nodes would never conclude), for at most
 *  SWIM_GRAY_HOLD_MULT (2) maximum suspicion timeouts from the suspicion's
 *  start: then it concludes after all (liveness: at N = 3 in the failover
 *  simulator the only other survivor held the dead member at an older
 *  incarnation, so no confirmation could ever come; a gray host's
 *  suspicions of live peers are refuted long before). It still takes a
 *  DEAD from others' gossip (their decision) once its own last-chance
 *  probe of the member fails, and it does not hold a suspicion where the
 *  member's host refused it (an answer, not silence); a proven refusal
 *  (a second member's evidence) is taken at once. The others meanwhile
 *  suspect the gray host, verify it, and the cluster makes one decision
 *  about it: it refutes and stays, or it is
 *  declared DEAD by healthy members (once) and then refutes via the dead
 *  probes when it can. A minority side of a partition is usually in poor
 *  health by the same measure, so it is slow (2 maximum timeouts) to
 *  declare the majority dead; the failover core's quorum, not this rule,
 *  is what keeps a minority from acting.
 *
 * A HOST SPEAKS ONLY FOR ITSELF (issue 13)
 *  Every member of the cluster may send us updates about every other, and
 *  a node certificate is all it takes to be one. So an update ("claim") is
 *  taken only within bounds that a single bad peer cannot move:
 *  - Incarnations have a ceiling, SWIM_INCARNATION_MAX = 2^62, far below
 *    wrap and far above anything real (one per restart or refutation). A
 *    claim above it is refused, and our own incarnation stops at it: a
 *    refutation of DEAD(us, 2^64 - 1) used to wrap to 0 and could never
 *    win again, leaving us dead for good.
 *  - Only a member raises its own incarnation, by an ALIVE. A SUSPECT or
 *    DEAD about another member above the incarnation we hold is refused:
 *    if the member really refuted meanwhile (its ALIVE has not reached us
 *    yet), the suspicion is retransmitted and taken once the ALIVE is in;
 *    if it really died at that incarnation we hold it alive at an older
 *    one, and our own probes find it. The member's own LEFT comes at its
 *    incarnation + 1 and is taken; higher (above the 0 of a first
 *    sighting: a host that left right after joining) only as the
 *    member's word, from itself or with its proof of leaving (below),
 *    within the jump limit.
 *  - A claim about us may raise our incarnation by at most
 *    SWIM_INCARNATION_JUMP_MAX = 2^20. We must refute a SUSPECT or DEAD at
 *    or above our incarnation, including one above it (a restart that lost
 *    its data dir catches up with what the cluster remembers so), but a
 *    forger now needs 2^42 messages, not one, to drive us to the ceiling.
 *    An ALIVE about another member may raise the incarnation we hold by
 *    as much (unless we hold it at 0, taken in unheard), for the same
 *    reason.
 *  - Signed ALIVE claims (cfg.alive_sign / alive_verify; both unset: none
 *    made or checked). A member signs (its name, its incarnation) once per
 *    change of its incarnation (swim_self_sign: at start, at every
 *    refutation or raise) and its ALIVE carries that proof; whoever relays
 *    the update relays the proof byte for byte (held per member, pf[],
 *    beside the 48-byte member record), in gossip and push-pull alike. An
 *    ALIVE that raises the incarnation we hold of a known member — one we
 *    hold ALIVE, SUSPECT or DEAD, ourselves included — is taken only if
 *    the proof verifies, or if the member itself sent it (the transport
 *    authenticated the sender: that is its own word, and how an agent
 *    older than proofs refutes; its relayed copies are refused);
 *    refused and counted otherwise (the glue's -ENOKEY, no key of the
 *    member known yet — just met — is counted but not reported, so that
 *    the rate-limited report is kept for forgeries). Without this a
 *    rogue node certificate could gossip ALIVE(n2, inc + 1) once a second
 *    and keep a dead n2 "refuting" its suspicion for ever, its HA VMs
 *    never failed over (tests/sim: test_forged_alive_holds_dead_host);
 *    or raise a live member, which then had to refute above it. With
 *    SUSPECT and DEAD taken only at an incarnation we hold (above), every
 *    incarnation a claim may name is one its member signed, or one we
 *    took in as a first sighting. A first sighting (a member we do not
 *    hold) is taken unsigned: it raises nothing, a join's push-pull
 *    brings every member at once and an agent older than proofs sends
 *    none; its proof is kept when it verifies, so that we relay it. The
 *    most a forger gains so is to introduce a member we had never heard
 *    of at an incarnation above its real one (the jump limit does not
 *    apply to the unheard): we then hold it ALIVE until our own probes
 *    suspect it at that incarnation, and its real ALIVEs, lower, are
 *    ignored until it refutes our suspicion (gossiped to it) above it.
 *    Proofs cost bytes: while proofs are on, a message piggybacks at most
 *    SWIM_PIGGYBACK_BYTES of updates (estimated, proofs included) so that
 *    a PING with its gossip still fits one 1200-byte datagram.
 *  - Only the member says it left. A LEFT takes its member out of every
 *    failover voting set at once, and its origin is a field anyone fills
 *    in: a rogue's LEFT(n3), LEFT(n4) on one side of a partition made
 *    that side a majority of a smaller set, which could fail over a live,
 *    quorate host on the other side. So swim_leave (and a re-assertion of
 *    our LEFT above a claim) signs (name, incarnation | SWIM_LEFT_CLAIM)
 *    through the same callbacks, a number no ALIVE can name, and our LEFT
 *    carries that proof; relays carry it byte for byte (pf[], flagged as
 *    a proof of leaving, so that neither proof is ever sent for the
 *    other). A LEFT from the member itself is its own word, as before; one
 *    relayed by anyone else is taken only if its proof verifies
 *    (swim_left_taken). The proof must verify at a member that never
 *    learned the leaver's key: a host that left 0.25 s after the cluster
 *    formed reached peers that held no record of it yet, and a first
 *    version, a bare signature checked with the certificate learned from
 *    records, had them refuse every relayed copy and find it dead instead
 *    (reverted, 00e233b). The daemon's proof therefore carries the
 *    certificate (~540 bytes with P-256: still one datagram, and
 *    SWIM_PIGGYBACK_BYTES lets the first update through whatever its
 *    size; up to SWIM_LEFT_PROOF_MAX in MemberUpdate.left_proof, a field
 *    an older agent skips). A relayed LEFT without a valid proof is
 *    refused as a LEFT (counted, reported rate-limited) and taken as what
 *    it could be, a report of a death from its relay at the incarnation
 *    we hold: a suspicion and our own last-chance probe (below), which a
 *    live member refutes, a leaving one answers with its LEFT, and a
 *    departed one fails, ending DEAD rather than LEFT. An agent older than
 *    proofs of leaving signs none: the glue vouches for its unsigned LEFT
 *    (alive_verify with no proof) when that agent's own signed node-state
 *    record says it signs none (docs/state.md, mixed versions). A LEFT at
 *    the incarnation we already hold it LEFT at is not checked again (its
 *    retransmissions cost nothing). A member that left keeps its proof
 *    until reaped (reap_ms, 24 h): ~540 bytes each with the daemon's
 *    certificates, in push-pull answers too.
 *  - One peer's word kills nobody. A DEAD from another member about one we
 *    hold ALIVE used to be taken at once (no suspicion here, a failover
 *    opened at once): any holder of a node certificate could have a
 *    healthy host failed over. Now, unless the suspicion we hold rests on
 *    our own evidence (we raised it, our verification probe confirmed it,
 *    or its agent refused us: swim_susp_ours), it is taken as a suspicion
 *    (gossiped, so a live member hears it and refutes) and we check the
 *    member at once with a last-chance probe: a PING carrying the
 *    suspicion and PING_REQs through k helpers, one protocol period to
 *    answer. Silence makes it DEAD ("reported dead by X, and our own probe
 *    failed"), under the same rules as a last-chance probe (helpers that
 *    all stay silent say the fault is ours: keep suspecting); an ACK keeps
 *    it suspect until its refutation arrives. A real death costs the
 *    members that had not verified it themselves one more protocol period
 *    and k + 1 probes each; those that had (all of them at N <= 2k + 2,
 *    where every member verifies a suspicion) take it at once, and a
 *    proven refusal is still proof. A forger who sends SUSPECT first gains
 *    nothing: a suspicion from another is not our evidence either.
 *  Every refused claim is counted (swim_claims_refused) and reported by a
 *  SWIM_EV_CLAIM_REFUSED event, at most one per SWIM_REFUSED_EVENT_MS
 *  with the number held back (the daemon logs it: rate-limited by
 *  construction). Checking a proof costs: ~65 us for a signature, ~370
 *  us when the certificate a proof of leaving carries is checked too
 *  (test_tls test_claim_cost), and a 4 MiB frame holds ~7,000 LEFTs, each
 *  with another forged proof. So a sender gets SWIM_PROOF_FAILS_PER_S
 *  (16) failed checks a second (counted in SWIM_PROOF_FAIL_SLOTS slots by
 *  name hash; a collision shares a slot); its further proofs that second
 *  are refused unchecked (swim_proofs_checked counts the checks made): an
 *  unchecked ALIVE raise is refused and comes again, an unchecked LEFT is
 *  a report to check, as any unproven one.
 *
 * DATA LAYOUT (the simulator runs 10,000 cores of 10,000 members each)
 *  Members live in one dense array, self at index 0; removal swaps the last
 *  one in. Every string (names, addresses, causes, origins) is interned in
 *  a string table: one copy, reference counted, looked up by hash. The
 *  table is the core's own, or one shared by every core of the process
 *  (swim_config.strtab: the simulator's 10,000 cores then hold each name
 *  and address once, not 10,000 times). Both the table (string -> id) and
 *  each core's member map (name -> member index) are name_index tables
 *  (name_index.h: 4-byte slots, at most 3/4 full, i.e. 5.3-10.7 bytes per
 *  entry), the member map reading names and their hashes through the
 *  table, so finding a member by name is one hash lookup. A member costs
 *  48 bytes plus 4 in the probe order and 5.3-10.7 in the member map, plus,
 *  with a private table, its two strings (12 bytes of table entry and
 *  5.3-10.7 of table index each, plus the characters); causes are shared. Output and event queues
 *  that a burst (a push-pull) grew are given back once drained, and so is
 *  the broadcast pool once every broadcast in it is spent. Suspicion
 *  state and pending broadcasts live in side pools, only for the members
 *  that need them, and per-member deadlines (suspicion timeouts, reaping) in
 *  one binary heap. Nothing but push-pull (a digest and the answer to one
 *  are an O(N) pass over the dense array) and the once-per-round shuffle
 *  is O(N), once per push-pull interval and once per probe round.
 *
 *  The member, probe-order and broadcast arrays grow by a quarter
 *  (swim_grow), not double: 10,000 tables that stopped growing waste
 *  ~10% on average instead of ~25-50%.
 *
 *  Output messages and events are built in chunked arenas (pointers never
 *  move); both are reset at the next mutating call once drained, so what
 *  swim_pop_* returns lives until then.
 */
#include "meshvisor/swim.h"
#include "arena.h"
#include "name_index.h"
#include "prng.h"
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

/* Caps on configuration, so fixed-size arrays suffice. 16 helpers is
 * already far above the useful range (the SWIM paper finds k = 3 enough). */
#define SWIM_K_MAX 16
/* Transmit-count buckets of the broadcast queue; the retransmit limit is
 * clamped to one less (λ = 4 gives 4 * 5 = 20 at N = 10,000). */
#define SWIM_BCAST_BUCKETS 64
/* Ping-req relays we serve at once; beyond that we are being flooded and a
 * dropped PING_REQ is just another lost packet to the requester. */
#define SWIM_RELAY_MAX 1024
/* Undrained events kept; a caller that never drains must not make us grow
 * without bound. */
#define SWIM_EVENT_QUEUE_MAX 65536
/* Failed proof checks one sender may cost us per second (then its proofs
 * are refused unchecked), counted in this many slots by name hash. */
#define SWIM_PROOF_FAILS_PER_S 16
#define SWIM_PROOF_FAIL_SLOTS 64
/* Join backoff stops doubling here (per the issue: "doubling to 30 s"). */
#define SWIM_JOIN_BACKOFF_MAX_MS 30000
/* A helper NACKs after this share of probe_timeout_ms (Lifeguard: 80%),
 * leaving the rest for the NACK to travel back before the requester's
 * protocol period ends. */
#define SWIM_NACK_PERCENT 80
/* Arena chunk: small, because 10,000 idle cores each keep one. */
/* Drained output and event queues longer than this are given back (a join
 * or push-pull queues one event per member; 10,000 idle cores must not
 * each keep room for 10,000). */
#define SWIM_QUEUE_KEEP 64
/* Human causes are at most this long (confirmer lists are truncated). */
#define SWIM_CAUSE_MAX 512
/* Compact the string pool when this many bytes are dead and they are more
 * than half of it: amortised O(1) per freed string. */
#define SWIM_POOL_WASTE_MIN 4096
/* push-pull scaling threshold (memberlist's pushPullScaleThreshold). */
#define SWIM_PUSH_PULL_SCALE_N 32
/* Digest push-pull: a bucket per this many members, at most this many
 * buckets of our own (2 KiB of digest; 39 members a bucket at 10,000). */
#define SWIM_DIGEST_PER_BUCKET 32
#define SWIM_DIGEST_OWN_MAX 256
_Static_assert(SWIM_DIGEST_OWN_MAX <= SWIM_DIGEST_MAX, "our digest must be one we accept");
/* Join storm: a push-pull round that finds this many members learned
 * since the previous one starts push-pulls every SWIM_STORM_PP_MIN_MS +
 * rand(SWIM_STORM_PP_SPREAD_MS), until SWIM_STORM_QUIET rounds in a row
 * learned fewer. */
#define SWIM_STORM_MIN 8
/* Above this many members, what a push-pull teaches us is not re-gossiped
 * (swim_regossip): behaviour below it is exactly as before issue 12. */
#define SWIM_PP_REGOSSIP_MAX 256
#define SWIM_STORM_PP_MIN_MS 500
#define SWIM_STORM_PP_SPREAD_MS 1000
#define SWIM_STORM_QUIET 3

#define SWIM_MASK(st) (1u << (st))

/* A suspicion we raised on a refused connection and that a helper we asked
 * confirmed with a refused NACK (two kernels say the port is closed) goes
 * DEAD this long after the confirmation: half a protocol period (500 ms by
 * default). Long enough for a live member that merely lost a probe to
 * hear the suspicion (our buddy PING and the first gossip round leave at
 * once) and refute in one round trip; short next to a silence suspicion
 * (4 s and more). Not scaled by awareness: the evidence is positive, not
 * an absence. What it does NOT spare: an agent killed and restarted
 * within about a second (or one whose address moved while we still probe
 * the old one) is declared DEAD at its old incarnation — truly, that
 * life is over — and comes back ALIVE at its new one; the failover core
 * then finds the host back (RECOVERY: an empty plan when its VMs still
 * run). */
#define SWIM_REFUSED_DEAD_PERCENT 50
/* Independent suspicions that bring a silence suspicion's timeout down
 * from its maximum to its minimum (Lifeguard's k in the timeout formula;
 * the gray-host rule still asks for k = min(indirect_probes, N - 2)).
 * memberlist (Serf) uses suspicion_mult - 2 = 2; with 3 at N = 5 a silent
 * host took ~10 s to be declared against Serf's ~5.7 s
 * (tests/bench/bench_fd_serf.sh). */
#define SWIM_SUSPICION_CONFIRMATIONS 2
/* Flap damping (a gray host): each suspicion or death a member refuted
 * within SWIM_FLAP_DECAY_MIN minutes of the previous one makes its next
 * suspicions' minimum longer — (1 + flaps) times, up to SWIM_FLAPS_MAX and
 * never above the maximum — so that a host that can answer only some
 * probes, whose suspicions others soon confirm, is not declared dead and
 * back every minute: the cluster keeps it, or declares it once. The
 * maximum (no confirmations) and the gray-host hold are not damped: they
 * bound how long a real silent death of a host that flapped can take. A
 * host that refuted nothing for that long starts afresh. (A crash is
 * still proven fast: a refusal does not wait for the timeout.) */
#define SWIM_FLAPS_MAX 3
#define SWIM_FLAP_DECAY_MIN 5
/* Members held DEAD are probed, one at a time, every this many protocol
 * periods (one PING carrying its DEAD record), so a false death is refuted
 * in seconds while a real one costs one PING per 3 periods per node. */
#define SWIM_DEAD_PROBE_PERIODS 3
/* Gray-host rule: our recent probe outcomes (1 = failed), last 16, at
 * least 4 before they count (swim_poor_health). */
#define SWIM_HIST_LEN 16
/* ...for at most this many unconfirmed suspicion timeouts (2 x 24 s at
 * N <= 10): then it concludes after all, so that a real death that only
 * poor nodes can see (at N = 3 the one other survivor holds it at an older
 * incarnation, say) still ends in a verdict: liveness over a longer wait. */
#define SWIM_GRAY_HOLD_MULT 2
#define SWIM_HIST_MIN 4

/* Last-chance probe of a suspect whose timer ran out (see the essay). */
enum { SWIM_CHECK_NONE = 0, SWIM_CHECK_SENT = 1, SWIM_CHECK_ACKED = 2 };

/* ------------------------------------------------------------------------ */
/* Internal types                                                            */

/* One interned string: characters at buf + off. refs counts the
 * references of every core using the table; refs == 0: on the free list,
 * and off is the next free id. */
struct swim_str {
	uint32_t off;
	uint32_t hash; /* name_index_hash() of the characters */
	uint32_t refs;
};

struct swim_strtab {
	char *buf;
	size_t used, cap, waste;
	struct swim_str *ent;
	uint32_t n_ent, cap_ent, free_head, live;
	struct name_index index; /* characters -> id, of every live string */
};

struct swim_member {
	uint64_t incarnation;
	uint64_t since_ms;
	uint32_t name;      /* str id */
	uint32_t addr;      /* str id */
	uint32_t cause;     /* str id or NONE */
	uint32_t order_pos; /* index in probe order (NONE for self) */
	uint32_t bcast;     /* broadcast pool index or NONE */
	uint32_t timer;     /* heap position or NONE */
	uint32_t susp;      /* suspicion pool index or NONE */
	uint8_t state;
	uint8_t flaps;     /* deaths or suspicions it refuted lately (damping) */
	uint16_t flap_min; /* minute (now / 60000, mod 2^16) of the last one */
};

/* The per-member budget the simulator's 10,000 x 10,000 run depends on. */
_Static_assert(sizeof(struct swim_member) <= 48, "struct swim_member grew");

struct swim_heap_ent {
	uint64_t at;
	uint32_t member;
};

struct swim_bcast {
	uint32_t member;
	uint32_t origin; /* str id or NONE */
	uint32_t prev, next;
	uint32_t transmits; /* NONE marks a free slot */
};

struct swim_susp {
	uint64_t start;
	uint64_t born;      /* when the suspicion began (start moves on restarts) */
	uint64_t check_seq; /* seq of the last-chance or verification probe */
	uint64_t check_end; /* when that probe's window closes */
	uint8_t check;      /* SWIM_CHECK_* */
	bool verify;        /* the probe is a verification (gossip-triggered) */
	uint8_t check_helpers, check_nacks;
	bool refused_self;                 /* our own send to it was refused */
	bool dead_heard;                   /* a DEAD from another waits on our own check */
	uint32_t refused_nacks;            /* bitmask over check_helper[]: refused NACKs */
	uint64_t refused_at;               /* when a helper confirmed our refusal; 0: not */
	uint32_t check_helper[SWIM_K_MAX]; /* str ids (referenced) of the probe's helpers */
	uint32_t member;
	uint32_t min_ms, max_ms;
	uint32_t k;      /* confirmations expected */
	uint32_t origin; /* str id of whoever suspected first */
	uint32_t n_conf;
	uint32_t conf[SWIM_K_MAX]; /* str ids; also free-list link in conf[0] */
};

struct swim_relay {
	uint64_t seq_in, seq_out, nack_at, expire_at;
	uint32_t requester, requester_addr, target; /* str ids */
	bool nacked;
};

struct swim_probe {
	bool active, indirect;
	uint32_t target; /* str id (referenced) */
	uint64_t seq, start, ping_req_at, end_at;
	uint32_t helper[SWIM_K_MAX]; /* str ids (referenced) */
	uint32_t n_helpers;
	uint32_t nacked; /* bitmask over helper[] */
};

struct swim {
	struct swim_config cfg;
	uint64_t rng[4];
	struct swim_strtab *sp; /* &own, or the caller's shared table (cfg.strtab) */
	struct swim_strtab own;
	/* Name -> member index (names and hashes read through the string
	 * table). Per core, since the table may be shared. */
	struct name_index nm;

	struct swim_member *m;
	uint32_t n_m, cap_m;
	uint32_t counts[4];

	uint32_t *order;
	uint32_t n_order, cap_order, cursor;

	struct swim_heap_ent *heap;
	uint32_t n_heap, cap_heap;

	struct swim_bcast *bc;
	uint32_t n_bc_slots, cap_bc, bc_free, n_bcast;
	uint32_t bc_head[SWIM_BCAST_BUCKETS], bc_tail[SWIM_BCAST_BUCKETS];

	struct swim_susp *su;
	uint32_t n_su_slots, cap_su, su_free;

	struct swim_relay *relay;
	uint32_t n_relay, cap_relay;

	uint64_t view_ver;   /* swim_view_version() */
	uint32_t learned;    /* members learned since our last push-pull round */
	bool storm;          /* a join storm: push-pull every ~1 s (see the essay) */
	uint8_t storm_quiet; /* storm rounds in a row that learned < SWIM_STORM_MIN */
	uint32_t awareness;
	uint64_t seq;
	struct swim_probe probe;
	uint64_t next_probe_at, next_gossip_at, next_push_pull_at;
	uint64_t early_push_pull_after; /* no early push-pull before this (see below) */

	bool joining;
	char (*seeds)[SWIM_ADDR_MAX];
	size_t n_seeds;
	uint64_t join_next_at;
	uint32_t join_backoff;

	uint32_t leave_tx;        /* transmissions of our LEFT update */
	uint32_t dead_probe_tick; /* probe periods since the last DEAD-member probe */
	uint16_t probe_hist;      /* last probe outcomes, bit 0 newest, 1 = failed */
	uint8_t probe_hist_n;
	bool stale_sender;       /* the message being handled holds a stale suspicion of us */
	uint64_t refused;        /* swim_claims_refused() */
	uint64_t proofs_checked; /* swim_proofs_checked() */
	/* failed proof checks per sender and second (swim_proof_check):
	 * SWIM_PROOF_FAIL_SLOTS, kept while proofs are checked */
	struct swim_pf_fails {
		uint32_t who; /* name hash of the sender */
		uint32_t n;
		uint64_t since;
	} * pff;
	/* Signed ALIVE claims (cfg.alive_sign or alive_verify set): each
	 * member's latest proof, parallel to m[] (NULL: none held). */
	struct swim_proof **pf;
	bool pf_on;
	uint32_t cap_pf;
	struct mv_ratelimit refused_rl; /* SWIM_EV_CLAIM_REFUSED, one per interval */

	struct swim_msg *out;
	size_t n_out, cap_out, out_head;
	struct mv_arena out_arena;

	struct swim_event *ev;
	size_t n_ev, cap_ev, ev_head;
	struct mv_arena ev_arena;

	/* scratch for bcast selection */
	uint32_t *pick;
	uint32_t cap_pick;
};

/* ------------------------------------------------------------------------ */
/* PRNG (prng.h): xoshiro256** seeded through splitmix64.                   */

static uint32_t swim_rand_below(struct swim *s, uint32_t n)
{
	return mv_xoshiro_below(s->rng, n);
}

/* Next capacity of a per-member array (members, probe order, broadcasts):
 * a quarter more, not twice, so that a table that stopped growing wastes
 * at most ~20%, not up to half: at N = 10,000 in the simulator 10,000
 * such tables are alive (issue 12: the 10,000-node run in 8 GiB). Still
 * amortised O(1) per member added. */
static uint32_t swim_grow(uint32_t cap)
{
	return cap < 64 ? (cap ? cap * 2 : 16) : cap + cap / 4;
}

/* ------------------------------------------------------------------------ */
/* Chunked arena for output messages and events.                            */

static const char *swim_arena_strdup(struct mv_arena *a, const char *str)
{
	const char *p = mv_arena_strdup(a, str);
	return p != NULL ? p : ""; /* out of memory: an empty string, never NULL */
}

/* ------------------------------------------------------------------------ */
/* String pool. Pointers from swim_str_get() move when a string is added
 * (realloc) or the pool is compacted (only at the start of a public call):
 * never hold one across swim_str_intern().                                 */

/* Seeds the PRNG with the node's name (not a table hash: changing it
 * would change every simulation). */
static uint32_t swim_hash(const char *p)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	return h;
}

static const char *swim_str_get(const struct swim *s, uint32_t id)
{
	return id == NONE ? "" : s->sp->buf + s->sp->ent[id].off;
}

static uint32_t swim_str_find(const struct swim *s, const char *p)
{
	return name_index_find(&s->sp->index, p);
}

static const char *swim_strtab_key(const void *t, uint32_t id)
{
	const struct swim_strtab *sp = t;
	return sp->buf + sp->ent[id].off;
}

static uint32_t swim_strtab_key_hash(const void *t, uint32_t id)
{
	return ((const struct swim_strtab *)t)->ent[id].hash;
}

static const struct name_index_ops swim_strtab_index_ops = {swim_strtab_key, swim_strtab_key_hash,
                                                            NULL};

static void swim_strtab_init(struct swim_strtab *t)
{
	t->free_head = NONE;
	name_index_init(&t->index, &swim_strtab_index_ops, t);
}

static void swim_str_ref(struct swim *s, uint32_t id)
{
	if (id != NONE)
		s->sp->ent[id].refs++;
}

/* Returns a referenced id for p, or NONE when out of memory. p must not
 * point into the pool. */
static uint32_t swim_str_intern(struct swim *s, const char *p)
{
	struct swim_strtab *sp = s->sp;
	uint32_t hash = name_index_hash(p);
	uint32_t id = name_index_find_hashed(&sp->index, p, hash);
	if (id != NONE) {
		sp->ent[id].refs++;
		return id;
	}
	size_t len = strlen(p) + 1;
	if (sp->used + len > sp->cap) {
		size_t cap = sp->cap ? sp->cap : 256;
		while (cap < sp->used + len)
			cap *= 2;
		char *nb = realloc(sp->buf, cap);
		if (nb == NULL)
			return NONE;
		sp->buf = nb;
		sp->cap = cap;
	}
	if (name_index_reserve(&sp->index, sp->live + 1) != 0)
		return NONE;
	if (sp->free_head == NONE) {
		if (sp->n_ent == sp->cap_ent) {
			uint32_t cap = sp->cap_ent ? sp->cap_ent * 2 : 64;
			struct swim_str *ne = realloc(sp->ent, sizeof(*ne) * cap);
			if (ne == NULL)
				return NONE;
			sp->ent = ne;
			sp->cap_ent = cap;
		}
		id = sp->n_ent++;
	} else {
		id = sp->free_head;
		sp->free_head = sp->ent[id].off;
	}
	struct swim_str *e = &sp->ent[id];
	e->off = (uint32_t)sp->used;
	memcpy(sp->buf + sp->used, p, len);
	sp->used += len;
	e->hash = hash;
	e->refs = 1;
	(void)name_index_insert(&sp->index, id); /* room reserved above */
	sp->live++;
	return id;
}

static void swim_str_unref(struct swim *s, uint32_t id)
{
	struct swim_strtab *sp = s->sp;
	if (id == NONE || --sp->ent[id].refs > 0)
		return;
	name_index_remove(&sp->index, id);
	sp->waste += strlen(sp->buf + sp->ent[id].off) + 1;
	sp->ent[id].off = sp->free_head;
	sp->free_head = id;
	sp->live--;
}

/* Replaces *slot by a new reference to p (may be NONE on ENOMEM). */
static void swim_str_set(struct swim *s, uint32_t *slot, const char *p)
{
	uint32_t id = swim_str_intern(s, p);
	swim_str_unref(s, *slot);
	*slot = id;
}

static void swim_str_compact(struct swim *s)
{
	struct swim_strtab *sp = s->sp;
	if (sp->waste < SWIM_POOL_WASTE_MIN || sp->waste * 2 < sp->used)
		return;
	size_t cap = (sp->used - sp->waste) * 2 + 256;
	char *nb = malloc(cap);
	if (nb == NULL)
		return;
	size_t used = 0;
	for (uint32_t id = 0; id < sp->n_ent; id++) {
		if (sp->ent[id].refs == 0)
			continue;
		size_t len = strlen(sp->buf + sp->ent[id].off) + 1;
		memcpy(nb + used, sp->buf + sp->ent[id].off, len);
		sp->ent[id].off = (uint32_t)used;
		used += len;
	}
	free(sp->buf);
	sp->buf = nb;
	sp->cap = cap;
	sp->used = used;
	sp->waste = 0;
}

/* Shared tables (swim.h). */

struct swim_strtab *swim_strtab_new(void)
{
	struct swim_strtab *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	swim_strtab_init(t);
	return t;
}

void swim_strtab_free(struct swim_strtab *t)
{
	if (t == NULL)
		return;
	free(t->buf);
	free(t->ent);
	name_index_free(&t->index);
	free(t);
}

size_t swim_strtab_count(const struct swim_strtab *t)
{
	return t == NULL ? 0 : t->live;
}

size_t swim_strtab_bytes(const struct swim_strtab *t)
{
	return t == NULL ? 0 : t->used - t->waste;
}

/* ------------------------------------------------------------------------ */
/* Sizes derived from the member count.                                      */

/* Members that count for timeouts and limits: alive and suspect, self
 * included. */
static uint32_t swim_n_live(const struct swim *s)
{
	return s->counts[SWIM_ALIVE] + s->counts[SWIM_SUSPECT];
}

static uint32_t swim_retransmit_limit(const struct swim *s)
{
	/* ceil(log10(N + 1)) is the number of decimal digits of N. */
	uint32_t n = swim_n_live(s), digits = 1;
	while (n >= 10) {
		n /= 10;
		digits++;
	}
	uint64_t lim = (uint64_t)s->cfg.retransmit_mult * digits;
	return lim > SWIM_BCAST_BUCKETS - 1 ? SWIM_BCAST_BUCKETS - 1 : (uint32_t)lim;
}

static uint64_t swim_scaled(const struct swim *s, uint32_t ms)
{
	return (uint64_t)ms * (s->awareness + 1);
}

/* ------------------------------------------------------------------------ */
/* Output queue.                                                             */

static void swim_out_reset_if_drained(struct swim *s)
{
	if (s->out_head == s->n_out) {
		s->n_out = s->out_head = 0;
		mv_arena_reset(&s->out_arena);
		if (s->cap_out > SWIM_QUEUE_KEEP) {
			free(s->out);
			s->out = NULL;
			s->cap_out = 0;
		}
	}
	if (s->ev_head == s->n_ev) {
		s->n_ev = s->ev_head = 0;
		mv_arena_reset(&s->ev_arena);
		if (s->cap_ev > SWIM_QUEUE_KEEP) {
			free(s->ev);
			s->ev = NULL;
			s->cap_ev = 0;
		}
	}
}

static struct swim_msg *swim_out_new(struct swim *s, enum swim_msg_type type, const char *to,
                                     const char *to_addr, uint64_t seq)
{
	if (s->n_out == s->cap_out) {
		size_t cap = s->cap_out ? s->cap_out * 2 : 16;
		struct swim_msg *n = realloc(s->out, sizeof(*n) * cap);
		if (n == NULL)
			return NULL;
		s->out = n;
		s->cap_out = cap;
	}
	struct swim_msg *m = &s->out[s->n_out++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = s->cfg.name;
	m->from_addr = s->cfg.addr;
	m->to = swim_arena_strdup(&s->out_arena, to);
	m->to_addr = swim_arena_strdup(&s->out_arena, to_addr);
	m->seq = seq;
	m->target = "";
	m->target_addr = "";
	m->updates = NULL;
	m->n_updates = 0;
	return m;
}

static const char *swim_default_origin(const struct swim *s, uint32_t i)
{
	const struct swim_member *mb = &s->m[i];
	switch ((enum swim_state)mb->state) {
	case SWIM_SUSPECT:
		return mb->susp != NONE ? swim_str_get(s, s->su[mb->susp].origin) : s->cfg.name;
	case SWIM_DEAD:
		return s->cfg.name;
	case SWIM_LEFT:
		return swim_str_get(s, mb->name);
	case SWIM_ALIVE:
	default:
		return "";
	}
}

/* ---- signed ALIVE claims (A HOST SPEAKS ONLY FOR ITSELF) ---- */

struct swim_proof {
	uint64_t inc; /* the incarnation it proves */
	uint16_t len;
	bool left;   /* a proof of leaving (SWIM_LEFT_CLAIM), else of living */
	uint8_t b[]; /* len bytes */
};

/* Member i's proof becomes (inc, p), of leaving if left: kept only while
 * proofs are on; none (NULL or 0 bytes) forgets the one held. */
static void swim_pf_set(struct swim *s, uint32_t i, uint64_t inc, bool left, const uint8_t *p,
                        size_t len)
{
	if (!s->pf_on)
		return;
	if (p == NULL || len == 0 || len > (left ? SWIM_LEFT_PROOF_MAX : SWIM_PROOF_MAX)) {
		free(s->pf[i]);
		s->pf[i] = NULL;
		return;
	}
	if (s->pf[i] == NULL || s->pf[i]->len != len) {
		free(s->pf[i]);
		if ((s->pf[i] = malloc(sizeof(*s->pf[i]) + len)) == NULL)
			return; /* relayed unsigned: taken as a first sighting only */
	}
	s->pf[i]->inc = inc;
	s->pf[i]->len = (uint16_t)len;
	s->pf[i]->left = left;
	memcpy(s->pf[i]->b, p, len);
}

/* Member i's proof of its current incarnation and state, if we hold it. */
static const struct swim_proof *swim_pf_current(const struct swim *s, uint32_t i)
{
	const struct swim_proof *pf = s->pf_on ? s->pf[i] : NULL;
	if (pf == NULL || pf->inc != s->m[i].incarnation ||
	    pf->left != (s->m[i].state == SWIM_LEFT))
		return NULL;
	return pf;
}

/* Our incarnation changed, or we left: sign the new (name, incarnation),
 * or (name, incarnation | SWIM_LEFT_CLAIM), once per change. */
static void swim_self_sign(struct swim *s)
{
	if (s->cfg.alive_sign == NULL)
		return;
	bool left = s->m[0].state == SWIM_LEFT;
	uint8_t b[SWIM_LEFT_PROOF_MAX];
	size_t cap = left ? SWIM_LEFT_PROOF_MAX : SWIM_PROOF_MAX;
	uint64_t inc = s->m[0].incarnation;
	int n = s->cfg.alive_sign(s->cfg.claim_arg, s->cfg.name, inc | (left ? SWIM_LEFT_CLAIM : 0),
	                          b, cap);
	swim_pf_set(s, 0, inc, left, b, n > 0 && (size_t)n <= cap ? (size_t)n : 0);
}

/* Sender via's count of failed proof checks in the current second (its
 * slot, by name hash, started over on a new second or another sender);
 * NULL when none are kept. */
static struct swim_pf_fails *swim_pf_fails_of(struct swim *s, const char *via, uint64_t now)
{
	if (s->pff == NULL)
		return NULL;
	uint32_t h = name_index_hash(via);
	struct swim_pf_fails *f = &s->pff[h % SWIM_PROOF_FAIL_SLOTS];
	if (f->who != h || now < f->since || now - f->since >= 1000) {
		f->who = h;
		f->since = now;
		f->n = 0;
	}
	return f;
}

/* Does u carry its member's valid proof of its incarnation (or of
 * leaving)? 0 yes, -ENOKEY we cannot check it yet, another < 0 no. A
 * sender whose proofs failed SWIM_PROOF_FAILS_PER_S times this second has
 * the rest refused unchecked: a check with a certificate costs ~0.4 ms,
 * and a 4 MiB frame holds ~7,000 LEFTs with forged proofs. */
static int swim_proof_check(struct swim *s, const struct swim_update *u, const char *via,
                            uint64_t now)
{
	/* (a LEFT without one still goes to the glue, which may know its
	 * member for an agent that signs no LEFTs: swim.h) */
	if ((u->proof == NULL || u->proof_len == 0) && u->state != SWIM_LEFT)
		return -EACCES;
	struct swim_pf_fails *f = swim_pf_fails_of(s, via, now);
	if (f != NULL && f->n >= SWIM_PROOF_FAILS_PER_S)
		return -EACCES;
	uint64_t claim = u->incarnation | (u->state == SWIM_LEFT ? SWIM_LEFT_CLAIM : 0);
	int rc = s->cfg.alive_verify(s->cfg.claim_arg, u->name, claim,
	                             u->proof_len ? u->proof : NULL, u->proof_len);
	s->proofs_checked++;
	if (rc == 0 || rc == -ENOKEY)
		return rc;
	if (f != NULL)
		f->n++;
	return -EACCES;
}

static void swim_claim_refused(struct swim *s, const struct swim_update *u, const char *via,
                               const char *why, uint64_t now);

/* An ALIVE raise without a proof that verifies: refused. One we cannot
 * check yet (the glue knows no key of its member: just met) is counted
 * but not reported, so that the report is kept for forgeries; the member's
 * own update comes again (retransmissions, push-pull). 0 if it verifies. */
static int swim_alive_checked(struct swim *s, const struct swim_update *u, const char *via,
                              const char *unsigned_why, uint64_t now)
{
	int rc = swim_proof_check(s, u, via, now);
	if (rc == -ENOKEY)
		s->refused++;
	else if (rc < 0)
		swim_claim_refused(s, u, via, u->proof_len ? "bad proof" : unsigned_why, now);
	return rc;
}

/* Writes member i's current state into u, strings copied to the arena. */
static void swim_fill_update(struct swim *s, struct swim_update *u, uint32_t i, uint32_t origin)
{
	const struct swim_member *mb = &s->m[i];
	u->name = swim_arena_strdup(&s->out_arena, swim_str_get(s, mb->name));
	u->addr = swim_arena_strdup(&s->out_arena, swim_str_get(s, mb->addr));
	u->incarnation = mb->incarnation;
	u->state = (enum swim_state)mb->state;
	if (mb->state == SWIM_ALIVE)
		u->origin = "";
	else if (origin != NONE)
		u->origin = swim_arena_strdup(&s->out_arena, swim_str_get(s, origin));
	else
		u->origin = swim_arena_strdup(&s->out_arena, swim_default_origin(s, i));
	u->proof = NULL;
	u->proof_len = 0;
	const struct swim_proof *pf = swim_pf_current(s, i);
	if (pf != NULL) {
		uint8_t *b = mv_arena_alloc(&s->out_arena, pf->len);
		if (b != NULL) {
			memcpy(b, pf->b, pf->len);
			u->proof = b;
			u->proof_len = pf->len;
		}
	}
}

/* ---- broadcast queue ---- */

static void swim_bc_unlink(struct swim *s, uint32_t id)
{
	struct swim_bcast *b = &s->bc[id];
	uint32_t k = b->transmits;
	if (b->prev != NONE)
		s->bc[b->prev].next = b->next;
	else
		s->bc_head[k] = b->next;
	if (b->next != NONE)
		s->bc[b->next].prev = b->prev;
	else
		s->bc_tail[k] = b->prev;
	b->prev = b->next = NONE;
}

static void swim_bc_link_head(struct swim *s, uint32_t id)
{
	struct swim_bcast *b = &s->bc[id];
	uint32_t k = b->transmits;
	b->prev = NONE;
	b->next = s->bc_head[k];
	if (b->next != NONE)
		s->bc[b->next].prev = id;
	else
		s->bc_tail[k] = id;
	s->bc_head[k] = id;
}

static void swim_bc_link_tail(struct swim *s, uint32_t id)
{
	struct swim_bcast *b = &s->bc[id];
	uint32_t k = b->transmits;
	b->next = NONE;
	b->prev = s->bc_tail[k];
	if (b->prev != NONE)
		s->bc[b->prev].next = id;
	else
		s->bc_head[k] = id;
	s->bc_tail[k] = id;
}

static void swim_bc_free(struct swim *s, uint32_t id)
{
	struct swim_bcast *b = &s->bc[id];
	swim_bc_unlink(s, id);
	s->m[b->member].bcast = NONE;
	swim_str_unref(s, b->origin);
	b->origin = NONE;
	b->member = NONE;
	b->transmits = NONE;
	b->next = s->bc_free;
	s->bc_free = id;
	s->n_bcast--;
}

/* Queues member i's current state for gossip, replacing what was queued
 * about it. origin: str id (a new reference is taken) or NONE. */
static void swim_bc_queue(struct swim *s, uint32_t i, uint32_t origin)
{
	uint32_t id = s->m[i].bcast;
	if (id == NONE) {
		if (s->bc_free != NONE) {
			id = s->bc_free;
			s->bc_free = s->bc[id].next;
		} else {
			if (s->n_bc_slots == s->cap_bc) {
				uint32_t cap = swim_grow(s->cap_bc);
				struct swim_bcast *n = realloc(s->bc, sizeof(*n) * cap);
				if (n == NULL)
					return;
				s->bc = n;
				s->cap_bc = cap;
			}
			id = s->n_bc_slots++;
		}
		s->bc[id].member = i;
		s->bc[id].origin = NONE;
		s->m[i].bcast = id;
		s->n_bcast++;
	} else {
		swim_bc_unlink(s, id);
	}
	swim_str_ref(s, origin);
	swim_str_unref(s, s->bc[id].origin);
	s->bc[id].origin = origin;
	s->bc[id].transmits = 0;
	swim_bc_link_head(s, id);
}

/* Bytes member i's update takes on the wire, about (see SWIM_PIGGYBACK_BYTES). */
static size_t swim_update_bytes(const struct swim *s, uint32_t i)
{
	const struct swim_member *mb = &s->m[i];
	const struct swim_proof *pf = swim_pf_current(s, i);
	return strlen(swim_str_get(s, mb->name)) + strlen(swim_str_get(s, mb->addr)) +
	       (mb->state == SWIM_ALIVE ? 0 : SWIM_NAME_MAX / 2) + (pf != NULL ? pf->len : 0) + 24;
}

/* Piggybacks up to the budget of pending updates on m, fewest-sent first.
 * `to` is the recipient's member index (or NONE): if we hold it SUSPECT the
 * suspicion always rides along (buddy system), and its own ALIVE is never
 * spent on it (it knows; the copy is kept for the others). `about` (or
 * NONE) is a member whose current state also always rides along unless it
 * is SUSPECT: the target of a relayed ACK/NACK, or ourselves in an ACK to a
 * PING that carried news about us, so that the requester learns a
 * refutation with the answer itself. Neither extra costs a transmission. */
static void swim_piggyback(struct swim *s, struct swim_msg *m, uint32_t to, uint32_t about)
{
	uint32_t budget = s->cfg.max_updates_per_msg;
	uint32_t limit = swim_retransmit_limit(s);
	size_t n = 0;
	if (s->cap_pick < budget) {
		uint32_t *p = realloc(s->pick, sizeof(*p) * budget);
		if (p == NULL)
			return;
		s->pick = p;
		s->cap_pick = budget;
	}
	/* Buddy system; and a member we hold DEAD hears it from us, so that
	 * a false death is refuted as soon as it is told (dead probes). */
	bool buddy_ok =
	    to != NONE && (s->m[to].state == SWIM_SUSPECT || s->m[to].state == SWIM_DEAD);
	bool about_ok = about != NONE && about != to && s->m[about].state != SWIM_SUSPECT;
	uint32_t extra = (buddy_ok ? 1 : 0) + (about_ok ? 1 : 0);
	uint32_t room = budget > extra ? budget - extra : 0;
	/* Only the recipient itself is left to tell: its own ALIVE is moot. */
	bool moot = to != NONE && swim_n_live(s) <= 2;
	/* with proofs on, a byte budget too (SWIM_PIGGYBACK_BYTES): the extras
	 * count against it, and the first pick always goes */
	size_t bytes = 0;
	if (s->pf_on) {
		if (buddy_ok)
			bytes += swim_update_bytes(s, to);
		if (about_ok)
			bytes += swim_update_bytes(s, about);
	}
	for (uint32_t k = 0; k < SWIM_BCAST_BUCKETS && n < room; k++)
		for (uint32_t id = s->bc_head[k], next; id != NONE && n < room; id = next) {
			next = s->bc[id].next;
			uint32_t mb = s->bc[id].member;
			if (mb == about && about_ok)
				continue;
			if (mb == to && (buddy_ok || s->m[mb].state == SWIM_ALIVE)) {
				if (moot && !buddy_ok)
					swim_bc_free(s, id);
				continue;
			}
			if (s->pf_on) {
				size_t b = swim_update_bytes(s, mb);
				if (n > 0 && bytes + b > SWIM_PIGGYBACK_BYTES) {
					room = (uint32_t)n; /* full: stop here */
					break;
				}
				bytes += b;
			}
			s->pick[n++] = id;
		}
	size_t total = n + extra;
	if (total == 0)
		return;
	struct swim_update *u = mv_arena_alloc(&s->out_arena, sizeof(*u) * total);
	if (u == NULL)
		return;
	size_t j = 0;
	if (buddy_ok)
		swim_fill_update(s, &u[j++], to, NONE);
	if (about_ok)
		swim_fill_update(s, &u[j++], about, NONE);
	for (size_t x = 0; x < n; x++) {
		uint32_t id = s->pick[x];
		struct swim_bcast *b = &s->bc[id];
		swim_fill_update(s, &u[j++], b->member, b->origin);
		if (b->member == 0 && s->m[0].state == SWIM_LEFT)
			s->leave_tx++;
		swim_bc_unlink(s, id);
		b->transmits++;
		if (b->transmits >= limit)
			swim_bc_free(s, id);
		else
			swim_bc_link_tail(s, id);
	}
	m->updates = u;
	m->n_updates = total;
}

/* Full member table, for push-pull. */
static void swim_full_state(struct swim *s, struct swim_msg *m)
{
	struct swim_update *u = mv_arena_alloc(&s->out_arena, sizeof(*u) * s->n_m);
	if (u == NULL)
		return;
	for (uint32_t i = 0; i < s->n_m; i++)
		swim_fill_update(s, &u[i], i, NONE);
	m->updates = u;
	m->n_updates = s->n_m;
}

/* ---- digest push-pull (PUSH-PULL BY DIGEST in the essay) ---- */

/* DEAD and LEFT members count 0: the merge does not copy every such
 * record across (an unknown member arrives only ALIVE, a DEAD is taken as
 * SUSPECT and a SUSPECT does not replace our DEAD or LEFT), so two tables
 * that differ only in their tombstones would never become equal and would
 * swap those buckets every round until the records are reaped (24 h). An
 * ALIVE or SUSPECT against a tombstone still differs (a healed partition
 * finds itself). */
static uint64_t swim_entry_hash(uint32_t name_h, uint32_t addr_h, uint64_t inc, enum swim_state st)
{
	if (st == SWIM_DEAD || st == SWIM_LEFT)
		return 0;
	return mv_mix64(((uint64_t)name_h << 32 | addr_h) ^ mv_mix64(inc * 4 + (uint64_t)st));
}

uint64_t swim_digest_entry(const char *name, const char *addr, uint64_t incarnation,
                           enum swim_state state)
{
	return swim_entry_hash(name_index_hash(name), name_index_hash(addr), incarnation, state);
}

uint32_t swim_digest_bucket(const char *name, uint32_t buckets)
{
	return buckets ? name_index_hash(name) & (buckets - 1) : 0;
}

static bool swim_pow2(size_t n)
{
	return n > 0 && (n & (n - 1)) == 0;
}

/* Buckets we use: one per SWIM_DIGEST_PER_BUCKET members, a power of two,
 * at most SWIM_DIGEST_OWN_MAX. */
static uint32_t swim_digest_buckets(const struct swim *s)
{
	uint32_t b = 1;
	while (b < SWIM_DIGEST_OWN_MAX && (uint64_t)b * SWIM_DIGEST_PER_BUCKET < s->n_m)
		b <<= 1;
	return b;
}

static uint32_t swim_bucket_of(const struct swim *s, uint32_t i, uint32_t buckets)
{
	return s->sp->ent[s->m[i].name].hash & (buckets - 1);
}

/* Our table as `buckets` bucket hashes (O(N), string hashes are cached). */
static void swim_digest(const struct swim *s, uint64_t *d, uint32_t buckets)
{
	memset(d, 0, sizeof(*d) * buckets);
	for (uint32_t i = 0; i < s->n_m; i++) {
		const struct swim_member *mb = &s->m[i];
		d[swim_bucket_of(s, i, buckets)] ^=
		    swim_entry_hash(s->sp->ent[mb->name].hash, s->sp->ent[mb->addr].hash,
		                    mb->incarnation, (enum swim_state)mb->state);
	}
}

/* Our members whose bucket is marked in `in` (of `buckets`). */
static void swim_bucket_state(struct swim *s, struct swim_msg *m, const uint8_t *in,
                              uint32_t buckets)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->n_m; i++)
		n += in[swim_bucket_of(s, i, buckets)];
	if (n == 0)
		return;
	struct swim_update *u = mv_arena_alloc(&s->out_arena, sizeof(*u) * n);
	if (u == NULL)
		return;
	uint32_t k = 0;
	for (uint32_t i = 0; i < s->n_m && k < n; i++)
		if (in[swim_bucket_of(s, i, buckets)])
			swim_fill_update(s, &u[k++], i, NONE);
	m->updates = u;
	m->n_updates = k;
}

/* A digest came (PUSH_PULL with n_digest buckets): answer with our members
 * of the buckets that differ and ask for theirs. Equal tables: no answer.
 * Nothing is kept: the answer is bounded by our own table. */
static void swim_on_digest(struct swim *s, const struct swim_msg *m)
{
	uint32_t buckets = (uint32_t)m->n_digest;
	uint64_t mine[SWIM_DIGEST_MAX];
	uint8_t differ[SWIM_DIGEST_MAX];
	swim_digest(s, mine, buckets);
	uint32_t n_differ = 0;
	for (uint32_t b = 0; b < buckets; b++) {
		differ[b] = mine[b] != m->digest[b];
		n_differ += differ[b];
	}
	if (n_differ == 0)
		return;
	struct swim_msg *r =
	    swim_out_new(s, SWIM_MSG_PUSH_PULL_REPLY, m->from, m->from_addr, m->seq);
	uint32_t *want = r ? mv_arena_alloc(&s->out_arena, sizeof(*want) * n_differ) : NULL;
	if (want == NULL)
		return;
	uint32_t k = 0;
	for (uint32_t b = 0; b < buckets; b++)
		if (differ[b])
			want[k++] = b;
	r->want = want;
	r->n_want = n_differ;
	r->buckets = buckets;
	swim_bucket_state(s, r, differ, buckets);
}

/* The answer to our digest asked for our members of some buckets (after
 * merging theirs, so they get the newer of each). */
static void swim_on_want(struct swim *s, const struct swim_msg *m)
{
	uint8_t in[SWIM_DIGEST_MAX];
	memset(in, 0, m->buckets);
	for (size_t k = 0; k < m->n_want; k++)
		in[m->want[k]] = 1;
	struct swim_msg *r =
	    swim_out_new(s, SWIM_MSG_PUSH_PULL_REPLY, m->from, m->from_addr, m->seq);
	if (r != NULL)
		swim_bucket_state(s, r, in, m->buckets);
}

/* ------------------------------------------------------------------------ */
/* Events.                                                                   */

static void swim_event(struct swim *s, enum swim_event_type type, uint32_t i, const char *cause,
                       uint32_t confirmations)
{
	if (i != NONE)
		swim_str_set(s, &s->m[i].cause, cause);
	if (s->n_ev - s->ev_head >= SWIM_EVENT_QUEUE_MAX)
		return;
	if (s->n_ev == s->cap_ev) {
		size_t cap = s->cap_ev ? s->cap_ev * 2 : 16;
		struct swim_event *n = realloc(s->ev, sizeof(*n) * cap);
		if (n == NULL)
			return;
		s->ev = n;
		s->cap_ev = cap;
	}
	struct swim_event *e = &s->ev[s->n_ev++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	if (i != NONE) {
		e->name = swim_arena_strdup(&s->ev_arena, swim_str_get(s, s->m[i].name));
		e->addr = swim_arena_strdup(&s->ev_arena, swim_str_get(s, s->m[i].addr));
		e->incarnation = s->m[i].incarnation;
		e->state = (enum swim_state)s->m[i].state;
	} else {
		e->name = "";
		e->addr = s->cfg.addr;
		e->incarnation = s->m[0].incarnation;
		e->state = (enum swim_state)s->m[0].state;
	}
	e->cause = swim_arena_strdup(&s->ev_arena, cause);
	e->confirmations = confirmations;
	e->local_health = s->awareness;
}

static void swim_awareness_add(struct swim *s, int delta, const char *why)
{
	int64_t v = (int64_t)s->awareness + delta;
	if (v < 0)
		v = 0;
	if (v > (int64_t)s->cfg.awareness_max)
		v = s->cfg.awareness_max;
	if ((uint32_t)v == s->awareness)
		return;
	s->awareness = (uint32_t)v;
	swim_event(s, SWIM_EV_LOCAL_HEALTH, NONE, why, 0);
}

/* ------------------------------------------------------------------------ */
/* Per-member deadline heap.                                                 */

static void swim_heap_place(struct swim *s, uint32_t pos, struct swim_heap_ent e)
{
	s->heap[pos] = e;
	s->m[e.member].timer = pos;
}

static void swim_heap_up(struct swim *s, uint32_t pos)
{
	struct swim_heap_ent e = s->heap[pos];
	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;
		if (s->heap[parent].at <= e.at)
			break;
		swim_heap_place(s, pos, s->heap[parent]);
		pos = parent;
	}
	swim_heap_place(s, pos, e);
}

static void swim_heap_down(struct swim *s, uint32_t pos)
{
	struct swim_heap_ent e = s->heap[pos];
	for (;;) {
		uint32_t c = 2 * pos + 1;
		if (c >= s->n_heap)
			break;
		if (c + 1 < s->n_heap && s->heap[c + 1].at < s->heap[c].at)
			c++;
		if (e.at <= s->heap[c].at)
			break;
		swim_heap_place(s, pos, s->heap[c]);
		pos = c;
	}
	swim_heap_place(s, pos, e);
}

static void swim_heap_set(struct swim *s, uint32_t i, uint64_t at)
{
	uint32_t pos = s->m[i].timer;
	if (pos == NONE) {
		if (s->n_heap == s->cap_heap) {
			uint32_t cap = s->cap_heap ? s->cap_heap * 2 : 16;
			struct swim_heap_ent *n = realloc(s->heap, sizeof(*n) * cap);
			if (n == NULL)
				return;
			s->heap = n;
			s->cap_heap = cap;
		}
		pos = s->n_heap++;
		s->heap[pos] = (struct swim_heap_ent){.at = at, .member = i};
		swim_heap_up(s, pos);
		return;
	}
	uint64_t old = s->heap[pos].at;
	s->heap[pos].at = at;
	if (at < old)
		swim_heap_up(s, pos);
	else
		swim_heap_down(s, pos);
}

static void swim_heap_del(struct swim *s, uint32_t i)
{
	uint32_t pos = s->m[i].timer;
	if (pos == NONE)
		return;
	s->m[i].timer = NONE;
	uint32_t last = --s->n_heap;
	if (pos == last)
		return;
	uint64_t old = s->heap[pos].at;
	swim_heap_place(s, pos, s->heap[last]);
	if (s->heap[pos].at < old)
		swim_heap_up(s, pos);
	else
		swim_heap_down(s, pos);
}

/* ------------------------------------------------------------------------ */
/* Suspicions.                                                               */

uint64_t swim_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, uint32_t confirmations,
                                   uint32_t expected)
{
	if (max_ms < min_ms)
		max_ms = min_ms;
	if (expected == 0 || confirmations >= expected)
		return min_ms;
	double frac = log((double)confirmations + 1.0) / log((double)expected + 1.0);
	double t = (double)max_ms - (double)(max_ms - min_ms) * frac;
	uint64_t r = (uint64_t)floor(t);
	return r < min_ms ? min_ms : r;
}

static void swim_suspicion_bounds(const struct swim *s, uint32_t *min_ms, uint32_t *max_ms)
{
	double n = (double)swim_n_live(s);
	double scale = n > 10.0 ? log10(n) : 1.0;
	double min = (double)s->cfg.suspicion_min_mult * scale * (double)s->cfg.probe_interval_ms;
	double max = min * (double)s->cfg.suspicion_max_mult;
	*min_ms = min > 4e9 ? 4000000000u : (uint32_t)min;
	*max_ms = max > 4e9 ? 4000000000u : (uint32_t)max;
}

static uint64_t swim_refused_ms(const struct swim *s)
{
	return (uint64_t)s->cfg.probe_interval_ms * SWIM_REFUSED_DEAD_PERCENT / 100;
}

static uint64_t swim_susp_deadline(const struct swim *s, const struct swim_susp *x)
{
	uint32_t want = x->k < SWIM_SUSPICION_CONFIRMATIONS ? x->k : SWIM_SUSPICION_CONFIRMATIONS;
	uint64_t at = x->start + swim_suspicion_timeout_ms(x->min_ms, x->max_ms, x->n_conf, want);
	if (x->refused_at != 0 && x->refused_at + swim_refused_ms(s) < at)
		at = x->refused_at + swim_refused_ms(s);
	return at;
}

/* Proof of a crash: we were refused, and a helper was refused too. */
static bool swim_susp_proven(const struct swim_susp *x)
{
	return x->refused_self && x->refused_at != 0;
}

static void swim_susp_drop_helpers(struct swim *s, struct swim_susp *x)
{
	for (uint32_t k = 0; k < x->check_helpers && k < SWIM_K_MAX; k++)
		swim_str_unref(s, x->check_helper[k]);
	x->check_helpers = 0;
	x->refused_nacks = 0;
}

/* Gray-host rule (see the essay): our awareness is at half its cap or
 * more, or most of our recent probes failed. Such a node declares nobody
 * DEAD on its own word. */
static bool swim_poor_health(const struct swim *s)
{
	if (s->cfg.awareness_max > 0 && s->awareness * 2 >= s->cfg.awareness_max)
		return true;
	if (s->probe_hist_n < SWIM_HIST_MIN)
		return false;
	uint32_t failed = (uint32_t)__builtin_popcount(s->probe_hist);
	return failed * 2 > s->probe_hist_n;
}

static void swim_probe_outcome(struct swim *s, bool failed)
{
	uint16_t keep = (uint16_t)((1u << (SWIM_HIST_LEN - 1)) - 1);
	s->probe_hist = (uint16_t)(((s->probe_hist & keep) << 1) | (failed ? 1u : 0u));
	if (s->probe_hist_n < SWIM_HIST_LEN)
		s->probe_hist_n++;
}

/* The member timer of suspect i: its suspicion deadline, or the end of the
 * probe we run on it (a verification ends early if the deadline comes
 * first; a last-chance probe runs past the deadline by design). */
static void swim_susp_arm(struct swim *s, uint32_t i)
{
	const struct swim_susp *x = &s->su[s->m[i].susp];
	uint64_t at = swim_susp_deadline(s, x);
	if (x->check == SWIM_CHECK_SENT)
		at = x->verify && at < x->check_end ? at : x->check_end;
	swim_heap_set(s, i, at);
}

static void swim_susp_free(struct swim *s, uint32_t i)
{
	uint32_t id = s->m[i].susp;
	if (id == NONE)
		return;
	struct swim_susp *x = &s->su[id];
	swim_str_unref(s, x->origin);
	for (uint32_t c = 0; c < x->n_conf; c++)
		swim_str_unref(s, x->conf[c]);
	swim_susp_drop_helpers(s, x);
	x->member = NONE;
	x->conf[0] = s->su_free;
	s->su_free = id;
	s->m[i].susp = NONE;
}

/* Flap damping: a member that refuted nothing for SWIM_FLAP_DECAY_MIN
 * minutes starts afresh. */
static void swim_flaps_decay(struct swim_member *mb, uint64_t now)
{
	if ((uint16_t)((uint16_t)(now / 60000) - mb->flap_min) >= SWIM_FLAP_DECAY_MIN)
		mb->flaps = 0;
}

/* Starts the suspicion record of member i (already SUSPECT). */
static void swim_susp_new(struct swim *s, uint32_t i, const char *origin, uint64_t now)
{
	uint32_t id;
	if (s->su_free != NONE) {
		id = s->su_free;
		s->su_free = s->su[id].conf[0];
	} else {
		if (s->n_su_slots == s->cap_su) {
			uint32_t cap = s->cap_su ? s->cap_su * 2 : 8;
			struct swim_susp *n = realloc(s->su, sizeof(*n) * cap);
			if (n == NULL)
				return;
			s->su = n;
			s->cap_su = cap;
		}
		id = s->n_su_slots++;
	}
	struct swim_susp *x = &s->su[id];
	memset(x, 0, sizeof(*x));
	x->start = now;
	x->born = now;
	x->member = i;
	swim_suspicion_bounds(s, &x->min_ms, &x->max_ms);
	struct swim_member *mb = &s->m[i];
	swim_flaps_decay(mb, now);
	if (mb->flaps) {
		/* (the minimum only, up to the maximum: the maximum and the
		 * gray-host hold, which bound how long a real silent death of
		 * it can take, stay as they are) */
		uint64_t damped = (uint64_t)x->min_ms * (1u + mb->flaps);
		x->min_ms = (uint32_t)(damped < x->max_ms ? damped : x->max_ms);
	}
	uint32_t n = swim_n_live(s);
	/* Expected confirmations: k helpers, or everyone but us and the suspect
	 * when fewer. */
	uint32_t others = n > 2 ? n - 2 : 0;
	x->k = s->cfg.indirect_probes < others ? s->cfg.indirect_probes : others;
	x->n_conf = 0;
	x->origin = NONE;
	s->m[i].susp = id;
	x->origin = swim_str_intern(s, origin);
	swim_susp_arm(s, i);
}

/* Counts origin as a confirmation of the suspicion of member i. Returns true
 * if it is a new independent one (to be re-gossiped). */
static bool swim_susp_confirm(struct swim *s, uint32_t i, const char *origin)
{
	uint32_t id = s->m[i].susp;
	if (id == NONE || origin[0] == '\0')
		return false;
	struct swim_susp *x = &s->su[id];
	if (x->n_conf >= x->k)
		return false;
	uint32_t oid = swim_str_find(s, origin);
	if (oid != NONE) {
		if (oid == x->origin)
			return false;
		for (uint32_t c = 0; c < x->n_conf; c++)
			if (x->conf[c] == oid)
				return false;
	}
	uint32_t nid = swim_str_intern(s, origin);
	if (nid == NONE)
		return false;
	x = &s->su[id];
	x->conf[x->n_conf++] = nid;
	swim_susp_arm(s, i);
	return true;
}

/* ------------------------------------------------------------------------ */
/* Member table.                                                             */

static const char *swim_member_key(const void *sw, uint32_t i)
{
	const struct swim *s = sw;
	return swim_str_get(s, s->m[i].name);
}

static uint32_t swim_member_key_hash(const void *sw, uint32_t i)
{
	const struct swim *s = sw;
	return s->sp->ent[s->m[i].name].hash;
}

static const struct name_index_ops swim_member_index_ops = {swim_member_key, swim_member_key_hash,
                                                            NULL};

/* Member index of the member named by str id, or NONE. */
static uint32_t swim_name_member(const struct swim *s, uint32_t id)
{
	if (id == NONE)
		return NONE;
	return name_index_find_hashed(&s->nm, swim_str_get(s, id), s->sp->ent[id].hash);
}

static uint32_t swim_member_lookup(const struct swim *s, const char *name)
{
	return name_index_find(&s->nm, name);
}

static void swim_order_fix(struct swim *s, uint32_t pos)
{
	s->m[s->order[pos]].order_pos = pos;
}

static uint32_t swim_member_add(struct swim *s, const char *name, const char *addr, uint64_t inc,
                                uint64_t now)
{
	if (s->n_m == s->cap_m) {
		uint32_t cap = swim_grow(s->cap_m);
		struct swim_member *n = realloc(s->m, sizeof(*n) * cap);
		if (n == NULL)
			return NONE;
		s->m = n;
		s->cap_m = cap;
	}
	if (s->pf_on && s->n_m == s->cap_pf) {
		struct swim_proof **n = realloc(s->pf, sizeof(*n) * s->cap_m);
		if (n == NULL)
			return NONE;
		s->pf = n;
		s->cap_pf = s->cap_m;
	}
	if (s->n_order == s->cap_order) {
		uint32_t cap = swim_grow(s->cap_order);
		uint32_t *n = realloc(s->order, sizeof(*n) * cap);
		if (n == NULL)
			return NONE;
		s->order = n;
		s->cap_order = cap;
	}
	uint32_t nid = swim_str_intern(s, name);
	if (nid == NONE)
		return NONE;
	uint32_t aid = swim_str_intern(s, addr);
	if (aid == NONE || name_index_reserve(&s->nm, s->n_m + 1) != 0) {
		swim_str_unref(s, aid);
		swim_str_unref(s, nid);
		return NONE;
	}
	uint32_t i = s->n_m++;
	struct swim_member *mb = &s->m[i];
	memset(mb, 0, sizeof(*mb));
	if (s->pf_on)
		s->pf[i] = NULL;
	mb->incarnation = inc;
	mb->since_ms = now;
	s->view_ver++;
	mb->name = nid;
	mb->addr = aid;
	mb->cause = NONE;
	mb->order_pos = NONE;
	mb->bcast = mb->timer = mb->susp = NONE;
	mb->state = SWIM_ALIVE;
	(void)name_index_insert(&s->nm, i); /* room reserved above */
	s->counts[SWIM_ALIVE]++;
	if (i != 0) {
		/* Append, then swap with a random slot (memberlist): a newcomer is
		 * probed within one round on average, not at the very end. */
		uint32_t pos = s->n_order++;
		s->order[pos] = i;
		uint32_t j = swim_rand_below(s, pos + 1);
		s->order[pos] = s->order[j];
		s->order[j] = i;
		swim_order_fix(s, pos);
		swim_order_fix(s, j);
	}
	return i;
}

static void swim_member_remove(struct swim *s, uint32_t i)
{
	struct swim_member *mb = &s->m[i];
	if (mb->bcast != NONE)
		swim_bc_free(s, mb->bcast);
	swim_susp_free(s, i);
	swim_heap_del(s, i);
	/* Out of the probe order, without letting an unprobed member slip into
	 * the already-probed part of this round. */
	uint32_t pos = mb->order_pos;
	if (pos != NONE) {
		if (pos < s->cursor) {
			s->order[pos] = s->order[s->cursor - 1];
			swim_order_fix(s, pos);
			pos = --s->cursor;
		}
		uint32_t last = --s->n_order;
		if (pos != last) {
			s->order[pos] = s->order[last];
			swim_order_fix(s, pos);
		}
	}
	s->counts[mb->state]--;
	s->view_ver++;
	name_index_remove(&s->nm, i);
	swim_str_unref(s, mb->name);
	swim_str_unref(s, mb->addr);
	swim_str_unref(s, mb->cause);
	uint32_t last = --s->n_m;
	if (s->pf_on) {
		free(s->pf[i]);
		s->pf[i] = s->pf[last];
		s->pf[last] = NULL;
	}
	if (i != last) {
		s->m[i] = s->m[last];
		mb = &s->m[i];
		name_index_move(&s->nm, last, i);
		if (mb->order_pos != NONE)
			s->order[mb->order_pos] = i;
		if (mb->bcast != NONE)
			s->bc[mb->bcast].member = i;
		if (mb->timer != NONE)
			s->heap[mb->timer].member = i;
		if (mb->susp != NONE)
			s->su[mb->susp].member = i;
	}
}

/* State change bookkeeping: counts, since, suspicion record, timers. */
static void swim_member_set_state(struct swim *s, uint32_t i, enum swim_state st, uint64_t inc,
                                  uint64_t now)
{
	struct swim_member *mb = &s->m[i];
	enum swim_state old = (enum swim_state)mb->state;
	s->counts[old]--;
	s->counts[st]++;
	mb->state = (uint8_t)st;
	mb->incarnation = inc;
	mb->since_ms = now;
	s->view_ver++;
	if (old == SWIM_SUSPECT && st != SWIM_SUSPECT)
		swim_susp_free(s, i);
	if (st == SWIM_ALIVE || i == 0)
		swim_heap_del(s, i);
	else if (st == SWIM_DEAD || st == SWIM_LEFT)
		swim_heap_set(s, i, now + s->cfg.reap_ms);
}

static void swim_member_suspect(struct swim *s, uint32_t i, uint64_t inc, const char *origin,
                                const char *cause, uint64_t now)
{
	swim_member_set_state(s, i, SWIM_SUSPECT, inc, now);
	swim_susp_new(s, i, origin, now);
	swim_event(s, SWIM_EV_MEMBER_SUSPECT, i, cause, 0);
	uint32_t susp = s->m[i].susp;
	swim_bc_queue(s, i, susp != NONE ? s->su[susp].origin : NONE);
}

/* ------------------------------------------------------------------------ */
/* Sending.                                                                  */

static void swim_send_ping(struct swim *s, uint32_t i, uint64_t seq)
{
	char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX];
	snprintf(to, sizeof(to), "%s", swim_str_get(s, s->m[i].name));
	snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, s->m[i].addr));
	struct swim_msg *m = swim_out_new(s, SWIM_MSG_PING, to, to_addr, seq);
	if (m != NULL)
		swim_piggyback(s, m, i, NONE); /* buddy system: carries our suspicion of i */
}

/* A reply or relay to a peer given by name and address (it may be unknown
 * to us). about: member index whose state rides along (swim_piggyback). */
static struct swim_msg *swim_send_about(struct swim *s, enum swim_msg_type type, const char *to,
                                        const char *to_addr, uint64_t seq, const char *target,
                                        const char *target_addr, uint32_t about)
{
	struct swim_msg *m = swim_out_new(s, type, to, to_addr, seq);
	if (m == NULL)
		return NULL;
	m->target = swim_arena_strdup(&s->out_arena, target);
	m->target_addr = swim_arena_strdup(&s->out_arena, target_addr);
	if (type != SWIM_MSG_PUSH_PULL && type != SWIM_MSG_PUSH_PULL_REPLY)
		swim_piggyback(s, m, swim_member_lookup(s, to), about);
	return m;
}

static struct swim_msg *swim_send_to(struct swim *s, enum swim_msg_type type, const char *to,
                                     const char *to_addr, uint64_t seq, const char *target,
                                     const char *target_addr)
{
	return swim_send_about(s, type, to, to_addr, seq, target, target_addr, NONE);
}

/* Up to `want` distinct random members, other than self and `exclude`,
 * whose state is in `mask` (bit per enum swim_state). Rejection sampling:
 * O(want) while eligible members are common; a scan when they are rare. */
static uint32_t swim_random_members(struct swim *s, uint32_t *out, uint32_t want, uint32_t exclude,
                                    unsigned mask)
{
	uint32_t n = 0, others = s->n_m - 1;
	if (others == 0 || want == 0)
		return 0;
	uint32_t eligible = 0;
	for (int st = 0; st < 4; st++)
		if (mask & (1u << st))
			eligible += s->counts[st];
	if (mask & (1u << s->m[0].state))
		eligible--;
	if (exclude != NONE && (mask & (1u << s->m[exclude].state)))
		eligible--;
	if (want > eligible)
		want = eligible;
	if (want == 0)
		return 0;
	uint32_t tries = 8 * want + 16;
	while (n < want && tries-- > 0) {
		uint32_t i = 1 + swim_rand_below(s, others);
		if (i == exclude || !(mask & (1u << s->m[i].state)))
			continue;
		bool dup = false;
		for (uint32_t j = 0; j < n; j++)
			dup |= out[j] == i;
		if (!dup)
			out[n++] = i;
	}
	if (n < want) {
		uint32_t start = swim_rand_below(s, others);
		for (uint32_t x = 0; x < others && n < want; x++) {
			uint32_t i = 1 + (start + x) % others;
			if (i == exclude || !(mask & (1u << s->m[i].state)))
				continue;
			bool dup = false;
			for (uint32_t j = 0; j < n; j++)
				dup |= out[j] == i;
			if (!dup)
				out[n++] = i;
		}
	}
	return n;
}

/* A new member was learned. In a join storm an ALIVE queued while the
 * cluster was small got a small retransmit budget and may miss a few
 * nodes, and the regular push-pull that would repair it can be minutes
 * away in a large cluster (90 s at N=100). So the first new member after a
 * quiet period moves our next push-pull to 2-5 s from now, when the storm
 * is likely over; at most once per base interval, so the cost is bounded. */
#define SWIM_EARLY_PP_MIN_MS 2000
#define SWIM_EARLY_PP_SPREAD_MS 3000

static void swim_member_learned(struct swim *s, uint64_t now)
{
	s->learned++;
	if (s->cfg.push_pull_interval_ms == 0 || now < s->early_push_pull_after)
		return;
	uint64_t at = now + SWIM_EARLY_PP_MIN_MS + swim_rand_below(s, SWIM_EARLY_PP_SPREAD_MS);
	if (at < s->next_push_pull_at)
		s->next_push_pull_at = at;
	s->early_push_pull_after = now + s->cfg.push_pull_interval_ms;
}

/* ------------------------------------------------------------------------ */
/* Applying gossip.                                                          */

static void swim_check_send(struct swim *s, uint32_t i, bool verify, uint64_t now);

/* A suspicion of member i reached us by gossip. Lifeguard waits for the
 * other members to confirm it in the course of their own probing, which at
 * N = 100 takes a minute per member; instead about 2k of us (each with
 * probability 2k / (N - 2)) probe it at once, and a failure becomes our own
 * suspicion (see the essay: verification probes). */
static void swim_verify_maybe(struct swim *s, uint32_t i, uint64_t now)
{
	uint32_t susp = s->m[i].susp;
	if (susp == NONE || s->su[susp].check != SWIM_CHECK_NONE || s->m[0].state == SWIM_LEFT)
		return;
	/* Evidence from a node that cannot reach anyone is no evidence. */
	if (s->awareness > 0)
		return;
	/* Our own probe of it is under way: its failure confirms anyway. */
	if (s->probe.active && s->probe.target == s->m[i].name)
		return;
	uint32_t n = swim_n_live(s);
	uint64_t want = 2ull * s->cfg.indirect_probes;
	if (n > 2 && want < n - 2 && swim_rand_below(s, n - 2) >= want)
		return;
	swim_check_send(s, i, true, now);
}

static void swim_refute(struct swim *s, uint64_t reported, const char *cause)
{
	struct swim_member *self = &s->m[0];
	/* never past the ceiling, so never wrapping (claims above it are
	 * refused, so `reported` is at most SWIM_INCARNATION_MAX) */
	self->incarnation = reported < SWIM_INCARNATION_MAX ? reported + 1 : SWIM_INCARNATION_MAX;
	s->view_ver++;
	swim_self_sign(s);
	swim_event(s, SWIM_EV_SELF_REFUTED, 0, cause, 0);
	swim_bc_queue(s, 0, NONE);
}

/* The others held us DEAD: we were the one cut off, so the suspicions we
 * raised meanwhile with nobody confirming them say more about us than
 * about them. Give each a fresh start (and a fresh last-chance probe)
 * instead of letting it expire into a death verdict on our word alone. */
static void swim_restart_own_suspicions(struct swim *s, uint64_t now)
{
	for (uint32_t i = 1; i < s->n_m; i++) {
		struct swim_member *mb = &s->m[i];
		if (mb->state != SWIM_SUSPECT || mb->susp == NONE)
			continue;
		struct swim_susp *x = &s->su[mb->susp];
		if (x->n_conf != 0 || x->origin != s->m[0].name)
			continue;
		x->start = now;
		x->check = SWIM_CHECK_NONE;
		x->verify = false;
		swim_susp_arm(s, i);
	}
}

/* An update we refuse (see A HOST SPEAKS ONLY FOR ITSELF): counted, and
 * reported by an event at most once per SWIM_REFUSED_EVENT_MS with the
 * number held back meanwhile. */
static void swim_claim_refused(struct swim *s, const struct swim_update *u, const char *via,
                               const char *why, uint64_t now)
{
	s->refused++;
	uint64_t held;
	if (!mv_ratelimit_allow(&s->refused_rl, now, &held))
		return;
	char cause[SWIM_CAUSE_MAX];
	snprintf(cause, sizeof(cause),
	         "%s at incarnation %llu from %s refused: %s (%llu more since)",
	         swim_state_name(u->state), (unsigned long long)u->incarnation, via, why,
	         (unsigned long long)held);
	size_t n = s->n_ev;
	swim_event(s, SWIM_EV_CLAIM_REFUSED, NONE, cause, 0);
	if (s->n_ev > n) {
		struct swim_event *e = &s->ev[s->n_ev - 1];
		e->name = swim_arena_strdup(&s->ev_arena, u->name);
		e->addr = swim_arena_strdup(&s->ev_arena, u->addr);
		e->incarnation = u->incarnation;
		e->state = u->state;
	}
}

static void swim_apply_self(struct swim *s, const struct swim_update *u, enum swim_state st,
                            const char *origin, const char *via, uint64_t now)
{
	struct swim_member *self = &s->m[0];
	char cause[SWIM_CAUSE_MAX];
	if (u->incarnation > self->incarnation &&
	    u->incarnation - self->incarnation > SWIM_INCARNATION_JUMP_MAX) {
		swim_claim_refused(s, u, via, "would raise our own incarnation too far", now);
		return;
	}
	/* only a life of ours could have signed a raise of us (a restart that
	 * lost its data dir): anyone else's is a forgery */
	if (st == SWIM_ALIVE && s->cfg.alive_verify != NULL && u->incarnation > self->incarnation &&
	    swim_alive_checked(s, u, via, "no proof", now) != 0)
		return;
	if (self->state == SWIM_LEFT) {
		/* We are leaving: re-assert LEFT above whatever is said of us. */
		if (st != SWIM_LEFT && u->incarnation >= self->incarnation &&
		    u->incarnation < SWIM_INCARNATION_MAX) {
			self->incarnation = u->incarnation + 1;
			s->view_ver++;
			swim_self_sign(s); /* our LEFT, re-signed above the claim */
			swim_bc_queue(s, 0, s->m[0].name);
		}
		return;
	}
	if (st != SWIM_ALIVE && u->incarnation < self->incarnation) {
		/* A stale suspicion: we refuted it already, but the refutation
		 * has not reached whoever still spreads this. Gossip our
		 * incarnation afresh and answer the sender directly. */
		swim_bc_queue(s, 0, NONE);
		s->stale_sender = true;
		return;
	}
	if (st == SWIM_ALIVE && u->incarnation < self->incarnation && self->bcast == NONE) {
		/* Someone holds an old incarnation of us (e.g. learned from
		 * our probe at 0): tell them the current one. */
		swim_bc_queue(s, 0, NONE);
		return;
	}
	bool refute;
	if (st == SWIM_ALIVE)
		refute = u->incarnation > self->incarnation ||
		         (u->incarnation == self->incarnation &&
		          strcmp(u->addr, swim_str_get(s, self->addr)) != 0);
	else
		refute = u->incarnation >= self->incarnation;
	if (!refute)
		return;
	uint64_t inc = u->incarnation < SWIM_INCARNATION_MAX ? u->incarnation + 1 : u->incarnation;
	switch (st) {
	case SWIM_SUSPECT:
		snprintf(
		    cause, sizeof(cause),
		    "suspected by %s at incarnation %llu (via %s); refuted with incarnation %llu",
		    origin, (unsigned long long)u->incarnation, via, (unsigned long long)inc);
		break;
	case SWIM_DEAD:
		snprintf(cause, sizeof(cause),
		         "reported dead by %s at incarnation %llu (via %s); refuted with "
		         "incarnation %llu",
		         origin, (unsigned long long)u->incarnation, via, (unsigned long long)inc);
		break;
	case SWIM_LEFT:
		snprintf(
		    cause, sizeof(cause),
		    "reported left at incarnation %llu (via %s); refuted with incarnation %llu",
		    (unsigned long long)u->incarnation, via, (unsigned long long)inc);
		break;
	case SWIM_ALIVE:
	default:
		snprintf(cause, sizeof(cause),
		         "reported alive at %s incarnation %llu (via %s), a previous life; refuted "
		         "with incarnation %llu",
		         u->addr, (unsigned long long)u->incarnation, via, (unsigned long long)inc);
		break;
	}
	swim_refute(s, u->incarnation, cause);
	if (st == SWIM_SUSPECT || st == SWIM_DEAD)
		swim_awareness_add(s, +1, "had to refute a suspicion about ourselves");
	if (st == SWIM_DEAD)
		swim_restart_own_suspicions(s, now);
}

static void swim_gossip_cause(char *buf, size_t len, const char *how, const char *via,
                              const char *origin)
{
	if (origin[0] != '\0' && strcmp(origin, via) != 0)
		snprintf(buf, len, "%s from %s (origin %s)", how, via, origin);
	else
		snprintf(buf, len, "%s from %s", how, via);
}

/* Whether an ALIVE we just took is gossiped on. Always from gossip, and
 * always when it refutes a suspicion or death we held (swim_apply); from a
 * push-pull only in a table of at most SWIM_PP_REGOSSIP_MAX members, or
 * when it is the sender's own record (a joiner's ALIVE reaching its seed):
 * in a large cluster a push-pull's news is spread by push-pulls (a join
 * storm's are a second apart), and re-gossiping a 10,000-member table
 * held 20 B per member in the broadcast queue of every node and kept it
 * sending 16 stale updates a message for ~13 minutes (issue 12). */
static bool swim_regossip(const struct swim *s, const struct swim_update *u, const char *via,
                          bool pp)
{
	return !pp || s->n_m <= SWIM_PP_REGOSSIP_MAX || strcmp(u->name, via) == 0;
}

/* Whether the suspicion we hold of member i rests on our own evidence: we
 * raised it, confirmed it (our verification probe failed), or its agent
 * refused us. */
static bool swim_susp_ours(const struct swim *s, uint32_t i)
{
	uint32_t id = s->m[i].susp;
	if (id == NONE)
		return false;
	const struct swim_susp *x = &s->su[id];
	uint32_t me = s->m[0].name;
	if (x->origin == me || x->refused_self)
		return true;
	for (uint32_t c = 0; c < x->n_conf; c++)
		if (x->conf[c] == me)
			return true;
	return false;
}

/* A DEAD about member i (at the incarnation we hold) from another member,
 * and we have no evidence of our own: one peer's word kills nobody (A
 * HOST SPEAKS ONLY FOR ITSELF). We suspect it (gossiped: a live member
 * refutes) and check it ourselves at once, directly and through k
 * helpers, as a last-chance probe; silence for one protocol period makes
 * it DEAD (swim_timer_members), an ACK keeps it suspect. Returns false
 * when the death is taken at once (our own evidence). */
static bool swim_dead_needs_check(struct swim *s, uint32_t i, const char *origin, const char *cause,
                                  uint64_t now)
{
	struct swim_member *mb = &s->m[i];
	if (mb->state == SWIM_SUSPECT && swim_susp_ours(s, i))
		return false;
	if (mb->state == SWIM_ALIVE) {
		char c[SWIM_CAUSE_MAX];
		snprintf(c, sizeof(c), "reported dead (%.*s); checking it ourselves",
		         (int)sizeof(c) - 64, cause);
		swim_member_suspect(s, i, mb->incarnation, origin, c, now);
		if (s->m[i].susp == NONE)
			return true; /* no memory: keep it suspect, nothing more */
	}
	struct swim_susp *x = &s->su[s->m[i].susp];
	x->dead_heard = true;
	if (x->check == SWIM_CHECK_NONE)
		swim_check_send(s, i, false, now);
	else if (x->check == SWIM_CHECK_SENT && x->verify) {
		/* our verification probe is under way: its window decides */
		x->verify = false;
		swim_susp_arm(s, i);
	}
	return true;
}

/* A LEFT of member i (origin i, new to us) reached us from `via`: is it
 * the member's own word? Taken with proofs off (as ever), from the member
 * itself (the transport authenticated the sender; an agent older than
 * proofs of leaving leaves so), or with its proof of leaving, which then
 * becomes the proof we relay. A relayed one without a proof that verifies
 * is refused as a LEFT (counted, reported rate-limited): a LEFT takes its
 * member out of every voting set at once, and its origin is a field
 * anyone fills in. */
static bool swim_left_taken(struct swim *s, uint32_t i, const struct swim_update *u,
                            const char *via, uint64_t now)
{
	if (!s->pf_on || s->cfg.alive_verify == NULL)
		return true;
	bool own = strcmp(via, u->name) == 0;
	int rc = swim_proof_check(s, u, via, now);
	if (rc == 0 || own) {
		swim_pf_set(s, i, u->incarnation, true, rc == 0 ? u->proof : NULL, u->proof_len);
		return true;
	}
	if (rc == -ENOKEY)
		s->refused++;
	else
		swim_claim_refused(s, u, via,
		                   u->proof_len ? "bad proof of leaving, checking it ourselves"
		                                : "no proof of leaving, checking it ourselves",
		                   now);
	return false;
}

/* Applies one update received from `via`. pp: it came in a push-pull. */
static void swim_apply(struct swim *s, const struct swim_update *u, const char *via, bool pp,
                       bool join, uint64_t now)
{
	const char *origin = u->origin[0] != '\0' ? u->origin : via;
	enum swim_state st = u->state;
	char cause[SWIM_CAUSE_MAX];
	if (u->incarnation > SWIM_INCARNATION_MAX) {
		swim_claim_refused(s, u, via, "incarnation above the ceiling", now);
		return;
	}
	/* Only the member itself can say it left; anyone else saying so is
	 * reporting a death. */
	if (st == SWIM_LEFT && strcmp(u->origin, u->name) != 0)
		st = SWIM_DEAD;
	if (strcmp(u->name, s->cfg.name) == 0) {
		swim_apply_self(s, u, st, origin, via, now);
		return;
	}
	/* One peer's stale table must not kill a member outright. */
	if (pp && st == SWIM_DEAD)
		st = SWIM_SUSPECT;
	const char *how = join ? "join push-pull" : pp ? "push-pull" : "gossip";
	uint32_t i = swim_member_lookup(s, u->name);
	if (i == NONE) {
		if (st != SWIM_ALIVE)
			return;
		i = swim_member_add(s, u->name, u->addr, u->incarnation, now);
		if (i == NONE)
			return;
		if (s->cfg.alive_verify != NULL && u->proof_len > 0 &&
		    swim_proof_check(s, u, via, now) == 0)
			swim_pf_set(s, i, u->incarnation, false, u->proof, u->proof_len);
		swim_gossip_cause(cause, sizeof(cause), how, via, "");
		swim_event(s, SWIM_EV_MEMBER_JOINED, i, cause, 0);
		if (swim_regossip(s, u, via, pp))
			swim_bc_queue(s, i, NONE);
		swim_member_learned(s, now);
		return;
	}
	struct swim_member *mb = &s->m[i];
	switch (st) {
	case SWIM_ALIVE: {
		if (u->incarnation <= mb->incarnation)
			return;
		if (mb->incarnation != 0 &&
		    u->incarnation - mb->incarnation > SWIM_INCARNATION_JUMP_MAX) {
			/* (0: we took it in unheard, any real update is news) */
			swim_claim_refused(s, u, via, "would raise its incarnation too far", now);
			return;
		}
		/* (from the member itself: its own word, whose sender the
		 * transport authenticated; an agent older than proofs
		 * refutes so) */
		if (s->cfg.alive_verify != NULL && strcmp(via, u->name) != 0 &&
		    swim_alive_checked(s, u, via, "no proof of its member", now) != 0)
			return;
		swim_pf_set(s, i, u->incarnation, false, u->proof, u->proof_len);
		enum swim_state old = (enum swim_state)mb->state;
		bool moved = strcmp(u->addr, swim_str_get(s, mb->addr)) != 0;
		if (moved)
			swim_str_set(s, &s->m[i].addr, u->addr);
		s->view_ver++;
		if (old != SWIM_ALIVE || moved)
			swim_member_set_state(s, i, SWIM_ALIVE, u->incarnation, now);
		else
			s->m[i].incarnation = u->incarnation;
		if (old == SWIM_SUSPECT || old == SWIM_DEAD) {
			/* a refuted suspicion or death: damp its next ones */
			struct swim_member *fm = &s->m[i];
			swim_flaps_decay(fm, now);
			if (fm->flaps < SWIM_FLAPS_MAX)
				fm->flaps++;
			fm->flap_min = (uint16_t)(now / 60000);
		}
		if (old == SWIM_SUSPECT) {
			snprintf(cause, sizeof(cause), "refuted with incarnation %llu (%s from %s)",
			         (unsigned long long)u->incarnation, how, via);
			swim_event(s, SWIM_EV_MEMBER_ALIVE, i, cause, 0);
		} else if (old != SWIM_ALIVE) {
			snprintf(
			    cause, sizeof(cause), "back from %s with incarnation %llu (%s from %s)",
			    swim_state_name(old), (unsigned long long)u->incarnation, how, via);
			swim_event(s, SWIM_EV_MEMBER_ALIVE, i, cause, 0);
			swim_member_learned(s, now); /* a rejoin is news like a join */
		}
		if (moved) {
			snprintf(cause, sizeof(cause),
			         "now at %s with incarnation %llu (%s from %s)", u->addr,
			         (unsigned long long)u->incarnation, how, via);
			swim_event(s, SWIM_EV_MEMBER_ADDR_CHANGED, i, cause, 0);
		}
		/* a refutation (of a suspicion or a death we held) is always
		 * gossiped on: left to push-pulls in a large cluster, it could
		 * arrive after others' suspicion timeouts (a false death) */
		if (old != SWIM_ALIVE || swim_regossip(s, u, via, pp))
			swim_bc_queue(s, i, NONE);
		return;
	}
	case SWIM_SUSPECT:
		if (u->incarnation < mb->incarnation)
			return;
		if (u->incarnation > mb->incarnation) {
			/* Only the member raises its incarnation (by an ALIVE):
			 * a suspicion above what we hold is nobody's to make. */
			swim_claim_refused(s, u, via, "above the incarnation we hold", now);
			return;
		}
		if (mb->state == SWIM_SUSPECT) {
			if (swim_susp_confirm(s, i, origin)) {
				uint32_t oid = swim_str_find(s, origin);
				swim_bc_queue(s, i, oid);
			}
			return;
		}
		if (mb->state != SWIM_ALIVE)
			return;
		swim_gossip_cause(cause, sizeof(cause), how, via, origin);
		swim_member_suspect(s, i, u->incarnation, origin, cause, now);
		if (!pp && strcmp(origin, s->cfg.name) != 0)
			swim_verify_maybe(s, i, now);
		return;
	case SWIM_DEAD:
	case SWIM_LEFT:
	default:
		if (u->incarnation < mb->incarnation)
			return;
		/* A death above the incarnation we hold is refused like a
		 * suspicion (had the member come back meanwhile, unseen by us,
		 * we hold it dead already or will learn of its life first); its
		 * own LEFT comes at its incarnation + 1 (swim_leave), or higher
		 * when we hold an older one (the 0 of a first sighting: a host
		 * that left right after joining) or it re-asserted its LEFT
		 * above a claim: with proofs on, such a LEFT raises like an
		 * ALIVE, if it is the member's word (swim_left_taken) and
		 * within SWIM_INCARNATION_JUMP_MAX. */
		if (u->incarnation > mb->incarnation &&
		    (st != SWIM_LEFT || (u->incarnation - mb->incarnation > 1 &&
		                         (!s->pf_on || s->cfg.alive_verify == NULL)))) {
			swim_claim_refused(s, u, via, "above the incarnation we hold", now);
			return;
		}
		if (st == SWIM_LEFT && mb->incarnation != 0 &&
		    u->incarnation - mb->incarnation > SWIM_INCARNATION_JUMP_MAX) {
			swim_claim_refused(s, u, via, "would raise its incarnation too far", now);
			return;
		}
		if (mb->state == SWIM_LEFT && u->incarnation == mb->incarnation)
			return; /* nothing new (and no proof to check again) */
		if (st == SWIM_LEFT && !swim_left_taken(s, i, u, via, now)) {
			/* not proven: a report of a death at the incarnation we
			 * hold, from whoever relayed it, which we check */
			if (mb->state == SWIM_LEFT || mb->state == SWIM_DEAD)
				return;
			st = SWIM_DEAD;
			origin = via;
			how = pp ? "unproven LEFT by push-pull" : "unproven LEFT by gossip";
		}
		uint64_t inc = st == SWIM_LEFT ? u->incarnation : mb->incarnation;
		if (mb->state == SWIM_LEFT || (mb->state == SWIM_DEAD && st == SWIM_DEAD)) {
			if (mb->incarnation != inc)
				s->view_ver++;
			mb->incarnation = inc;
			return;
		}
		if (st == SWIM_DEAD) {
			swim_gossip_cause(cause, sizeof(cause), how, via, origin);
			if (swim_dead_needs_check(s, i, origin, cause, now))
				return;
		}
		swim_member_set_state(s, i, st, inc, now);
		if (st == SWIM_LEFT) {
			snprintf(cause, sizeof(cause), "left the cluster (%s from %s)", how, via);
			swim_event(s, SWIM_EV_MEMBER_LEFT, i, cause, 0);
			swim_bc_queue(s, i, s->m[i].name);
		} else {
			swim_gossip_cause(cause, sizeof(cause), how, via, origin);
			swim_event(s, SWIM_EV_MEMBER_DEAD, i, cause, 0);
			uint32_t oid = swim_str_intern(s, origin);
			swim_bc_queue(s, i, oid);
			swim_str_unref(s, oid);
		}
		return;
	}
}

static void swim_apply_all(struct swim *s, const struct swim_msg *m, bool pp, uint64_t now)
{
	for (size_t k = 0; k < m->n_updates; k++)
		swim_apply(s, &m->updates[k], m->from, pp, m->join, now);
}

static bool swim_msg_mentions(const struct swim_msg *m, const char *name)
{
	for (size_t k = 0; k < m->n_updates; k++)
		if (strcmp(m->updates[k].name, name) == 0)
			return true;
	return false;
}

/* A PING or PING_REQ from a node we do not know: it is alive (it probes),
 * so we take it in, ALIVE at incarnation 0, the lowest it can hold: any
 * update from it or about it overrides that, and it corrects anyone
 * holding it stale (swim_apply_self). If the message says anything about
 * its sender, that update decides instead (e.g. a LEFT is not undone). A
 * joiner's first probes then teach their targets about it. */
static void swim_learn_sender(struct swim *s, const struct swim_msg *m, uint64_t now)
{
	if (s->m[0].state == SWIM_LEFT || swim_member_lookup(s, m->from) != NONE ||
	    swim_msg_mentions(m, m->from))
		return;
	uint32_t i = swim_member_add(s, m->from, m->from_addr, 0, now);
	if (i == NONE)
		return;
	char cause[SWIM_CAUSE_MAX];
	snprintf(cause, sizeof(cause), "first heard from directly (%s), incarnation taken as 0",
	         swim_msg_type_name(m->type));
	swim_event(s, SWIM_EV_MEMBER_JOINED, i, cause, 0);
	swim_bc_queue(s, i, NONE);
	swim_member_learned(s, now);
}

/* ------------------------------------------------------------------------ */
/* Probing.                                                                  */

static void swim_probe_clear(struct swim *s)
{
	struct swim_probe *p = &s->probe;
	swim_str_unref(s, p->target);
	for (uint32_t k = 0; k < p->n_helpers; k++)
		swim_str_unref(s, p->helper[k]);
	memset(p, 0, sizeof(*p));
	p->target = NONE;
}

/* Next target in the shuffled round-robin order; reshuffles at the end. */
static uint32_t swim_probe_pick(struct swim *s)
{
	for (uint32_t tries = 0; tries <= s->n_order; tries++) {
		if (s->cursor >= s->n_order) {
			for (uint32_t x = s->n_order; x > 1; x--) {
				uint32_t j = swim_rand_below(s, x);
				uint32_t t = s->order[x - 1];
				s->order[x - 1] = s->order[j];
				s->order[j] = t;
				swim_order_fix(s, x - 1);
				swim_order_fix(s, j);
			}
			s->cursor = 0;
			if (s->n_order == 0)
				return NONE;
		}
		uint32_t i = s->order[s->cursor++];
		if (s->m[i].state == SWIM_ALIVE || s->m[i].state == SWIM_SUSPECT)
			return i;
	}
	return NONE;
}

/* One member held DEAD, every SWIM_DEAD_PROBE_PERIODS periods: a PING
 * carrying its DEAD record (swim_piggyback). A live one refutes in the ACK
 * (incarnation + 1); an ACK at its old incarnation revives nothing. */
static void swim_dead_probe(struct swim *s)
{
	if (s->counts[SWIM_DEAD] == 0 || ++s->dead_probe_tick < SWIM_DEAD_PROBE_PERIODS)
		return;
	s->dead_probe_tick = 0;
	uint32_t i;
	if (swim_random_members(s, &i, 1, NONE, SWIM_MASK(SWIM_DEAD)) == 1)
		swim_send_ping(s, i, ++s->seq);
}

static void swim_probe_start(struct swim *s, uint64_t now)
{
	s->next_probe_at = now + swim_scaled(s, s->cfg.probe_interval_ms);
	if (s->m[0].state == SWIM_LEFT)
		return;
	swim_dead_probe(s);
	uint32_t i = swim_probe_pick(s);
	if (i == NONE)
		return;
	struct swim_probe *p = &s->probe;
	p->active = true;
	p->indirect = false;
	p->seq = ++s->seq;
	p->start = now;
	p->ping_req_at = now + swim_scaled(s, s->cfg.probe_timeout_ms);
	p->end_at = s->next_probe_at;
	p->n_helpers = 0;
	p->nacked = 0;
	p->target = s->m[i].name;
	swim_str_ref(s, p->target);
	swim_send_ping(s, i, p->seq);
}

static void swim_probe_indirect(struct swim *s)
{
	struct swim_probe *p = &s->probe;
	p->indirect = true;
	uint32_t t = swim_name_member(s, p->target);
	if (t == NONE)
		return;
	uint32_t pick[SWIM_K_MAX];
	uint32_t n = swim_random_members(s, pick, s->cfg.indirect_probes, t, SWIM_MASK(SWIM_ALIVE));
	char target[SWIM_NAME_MAX], target_addr[SWIM_ADDR_MAX];
	snprintf(target, sizeof(target), "%s", swim_str_get(s, s->m[t].name));
	snprintf(target_addr, sizeof(target_addr), "%s", swim_str_get(s, s->m[t].addr));
	for (uint32_t k = 0; k < n; k++) {
		char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX];
		snprintf(to, sizeof(to), "%s", swim_str_get(s, s->m[pick[k]].name));
		snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, s->m[pick[k]].addr));
		p->helper[p->n_helpers++] = s->m[pick[k]].name;
		swim_str_ref(s, s->m[pick[k]].name);
		swim_send_to(s, SWIM_MSG_PING_REQ, to, to_addr, p->seq, target, target_addr);
	}
}

static void swim_probe_fail(struct swim *s, uint64_t now)
{
	struct swim_probe *p = &s->probe;
	char why[SWIM_CAUSE_MAX];
	uint32_t missing = 0;
	for (uint32_t k = 0; k < p->n_helpers; k++)
		if (!(p->nacked & (1u << k)))
			missing++;
	uint32_t t = swim_name_member(s, p->target);
	snprintf(why, sizeof(why), "probe of %s failed; %u of %u helpers sent no nack",
	         swim_str_get(s, p->target), missing, p->n_helpers);
	swim_probe_outcome(s, true);
	swim_awareness_add(s, 1 + (int)missing, why);
	if (t != NONE && s->m[t].state == SWIM_ALIVE) {
		snprintf(why, sizeof(why), "probe failed: no ack direct or via %u indirect",
		         p->n_helpers);
		swim_member_suspect(s, t, s->m[t].incarnation, s->cfg.name, why, now);
	} else if (t != NONE && s->m[t].state == SWIM_SUSPECT) {
		if (swim_susp_confirm(s, t, s->cfg.name))
			swim_bc_queue(s, t, s->m[0].name);
	}
	swim_probe_clear(s);
}

/* ------------------------------------------------------------------------ */
/* Message handlers.                                                         */

static void swim_on_ack(struct swim *s, const struct swim_msg *m)
{
	if (m->seq == 0)
		return; /* unsolicited: gossip only */
	/* Answer to a last-chance probe of a suspect (direct or relayed)? */
	uint32_t about = swim_member_lookup(s, m->target[0] != '\0' ? m->target : m->from);
	if (about != NONE && s->m[about].susp != NONE) {
		struct swim_susp *x = &s->su[s->m[about].susp];
		if (x->check == SWIM_CHECK_SENT && x->check_seq == m->seq) {
			/* It answered: whatever refused us was not its agent's
			 * end (a stale path, a restart): no proof any more. */
			x->check = SWIM_CHECK_ACKED;
			x->refused_self = false;
			x->refused_at = 0;
			swim_susp_arm(s, about);
			return;
		}
	}
	struct swim_probe *p = &s->probe;
	if (p->active && m->seq == p->seq) {
		const char *tname = swim_str_get(s, p->target);
		if (strcmp(m->from, tname) == 0 || strcmp(m->target, tname) == 0) {
			swim_probe_clear(s);
			swim_probe_outcome(s, false);
			swim_awareness_add(s, -1, "probe succeeded");
			return;
		}
	}
	for (uint32_t r = 0; r < s->n_relay; r++) {
		struct swim_relay *rl = &s->relay[r];
		if (rl->seq_out != m->seq || strcmp(m->from, swim_str_get(s, rl->target)) != 0)
			continue;
		char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX], target[SWIM_NAME_MAX];
		snprintf(to, sizeof(to), "%s", swim_str_get(s, rl->requester));
		snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, rl->requester_addr));
		snprintf(target, sizeof(target), "%s", swim_str_get(s, rl->target));
		uint64_t seq = rl->seq_in;
		/* Done with it; remove before sending (sending may intern). */
		swim_str_unref(s, rl->requester);
		swim_str_unref(s, rl->requester_addr);
		swim_str_unref(s, rl->target);
		s->relay[r] = s->relay[--s->n_relay];
		/* With the target's state as we now hold it: if the requester
		 * suspects a stale incarnation, this is its refutation. */
		swim_send_about(s, SWIM_MSG_ACK, to, to_addr, seq, target, m->from_addr,
		                swim_member_lookup(s, target));
		return;
	}
}

static void swim_on_ping_req(struct swim *s, const struct swim_msg *m, uint64_t now)
{
	if (strcmp(m->target, s->cfg.name) == 0) {
		/* Asked to probe ourselves: answer for ourselves. */
		swim_send_about(s, SWIM_MSG_ACK, m->from, m->from_addr, m->seq, s->cfg.name,
		                s->cfg.addr, 0);
		return;
	}
	if (s->n_relay >= SWIM_RELAY_MAX)
		return;
	if (s->n_relay == s->cap_relay) {
		uint32_t cap = s->cap_relay ? s->cap_relay * 2 : 4;
		struct swim_relay *n = realloc(s->relay, sizeof(*n) * cap);
		if (n == NULL)
			return;
		s->relay = n;
		s->cap_relay = cap;
	}
	uint32_t req = swim_str_intern(s, m->from);
	uint32_t req_addr = swim_str_intern(s, m->from_addr);
	uint32_t target = swim_str_intern(s, m->target);
	if (req == NONE || req_addr == NONE || target == NONE) {
		swim_str_unref(s, req);
		swim_str_unref(s, req_addr);
		swim_str_unref(s, target);
		return;
	}
	struct swim_relay *rl = &s->relay[s->n_relay++];
	rl->seq_in = m->seq;
	rl->seq_out = ++s->seq;
	rl->nack_at = now + (uint64_t)s->cfg.probe_timeout_ms * SWIM_NACK_PERCENT / 100;
	rl->expire_at = now + s->cfg.probe_timeout_ms;
	rl->requester = req;
	rl->requester_addr = req_addr;
	rl->target = target;
	rl->nacked = false;
	swim_send_to(s, SWIM_MSG_PING, m->target, m->target_addr, rl->seq_out, "", "");
}

static void swim_on_nack(struct swim *s, const struct swim_msg *m, uint64_t now)
{
	/* A helper of a last-chance or verification probe? */
	uint32_t about = swim_member_lookup(s, m->target);
	if (about != NONE && s->m[about].susp != NONE) {
		struct swim_susp *x = &s->su[s->m[about].susp];
		if (x->check == SWIM_CHECK_SENT && x->check_seq == m->seq) {
			if (x->check_nacks < UINT8_MAX)
				x->check_nacks++;
			/* "It refused me too": counted once per helper we asked
			 * for this very probe; anyone else's word is no proof. */
			uint32_t id = m->refused ? swim_str_find(s, m->from) : NONE;
			for (uint32_t k = 0; id != NONE && k < x->check_helpers; k++) {
				if (x->check_helper[k] != id || (x->refused_nacks & (1u << k)))
					continue;
				x->refused_nacks |= 1u << k;
				if (x->refused_self && x->refused_at == 0) {
					x->refused_at = now;
					swim_susp_arm(s, about);
				}
			}
			return;
		}
	}
	struct swim_probe *p = &s->probe;
	if (!p->active || m->seq != p->seq)
		return;
	uint32_t id = swim_str_find(s, m->from);
	for (uint32_t k = 0; k < p->n_helpers; k++)
		if (p->helper[k] == id)
			p->nacked |= 1u << k;
}

static void swim_join_done(struct swim *s, const struct swim_msg *m)
{
	char cause[SWIM_CAUSE_MAX];
	s->joining = false;
	/* Announce ourselves (memberlist does the same): the seed spreads
	 * our ALIVE too, but its copies alone may miss someone. Queued now,
	 * after the table we just learned (which we re-gossip too), so that
	 * it goes first, newest first, with a fresh budget. */
	swim_bc_queue(s, 0, NONE);
	snprintf(cause, sizeof(cause), "joined through %s at %s", m->from, m->from_addr);
	swim_event(s, SWIM_EV_JOINED_CLUSTER, NONE, cause, 0);
}

/* ------------------------------------------------------------------------ */
/* Validation.                                                               */

static bool swim_str_ok(const char *p, size_t max, bool nonempty)
{
	if (p == NULL)
		return false;
	size_t n = strnlen(p, max);
	return n < max && (!nonempty || n > 0);
}

static bool swim_msg_ok(const struct swim_msg *m)
{
	if (m == NULL)
		return false;
	if ((unsigned)m->type > SWIM_MSG_PUSH_PULL_REPLY)
		return false;
	if (!swim_str_ok(m->from, SWIM_NAME_MAX, true) ||
	    !swim_str_ok(m->from_addr, SWIM_ADDR_MAX, true) ||
	    !swim_str_ok(m->to, SWIM_NAME_MAX, false) ||
	    !swim_str_ok(m->to_addr, SWIM_ADDR_MAX, false) ||
	    !swim_str_ok(m->target, SWIM_NAME_MAX, false) ||
	    !swim_str_ok(m->target_addr, SWIM_ADDR_MAX, false))
		return false;
	if (m->type == SWIM_MSG_PING_REQ && (m->target[0] == '\0' || m->target_addr[0] == '\0'))
		return false;
	if (m->n_updates > 0 && m->updates == NULL)
		return false;
	if (m->n_digest > 0 &&
	    (m->digest == NULL || !swim_pow2(m->n_digest) || m->n_digest > SWIM_DIGEST_MAX))
		return false;
	if (m->n_want > 0) {
		if (m->want == NULL || !swim_pow2(m->buckets) || m->buckets > SWIM_DIGEST_MAX ||
		    m->n_want > m->buckets)
			return false;
		for (size_t k = 0; k < m->n_want; k++)
			if (m->want[k] >= m->buckets)
				return false;
	}
	for (size_t k = 0; k < m->n_updates; k++) {
		const struct swim_update *u = &m->updates[k];
		if (!swim_str_ok(u->name, SWIM_NAME_MAX, true) ||
		    !swim_str_ok(u->addr, SWIM_ADDR_MAX, true) ||
		    !swim_str_ok(u->origin, SWIM_NAME_MAX, false) ||
		    (unsigned)u->state > SWIM_LEFT ||
		    u->proof_len > (u->state == SWIM_LEFT ? SWIM_LEFT_PROOF_MAX : SWIM_PROOF_MAX) ||
		    (u->proof_len > 0 && u->proof == NULL))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                               */

void swim_config_default(struct swim_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->probe_interval_ms = 1000;
	cfg->probe_timeout_ms = 500;
	cfg->indirect_probes = 3;
	cfg->retransmit_mult = 4;
	/* min = 4 * max(1, log10 N) * 1 s, max = 6 * min: 4 s / 24 s at N = 5,
	 * 8 s / 48 s at N = 100, as memberlist/Serf (suspicion_mult 4). Silence
	 * must survive 36% loss on every path and a 5 s SIGSTOP; a crash whose
	 * host is up is proven by refusals (SWIM_REFUSED_DEAD_PERCENT) and does
	 * not wait for this timeout. Figures: bench_sim_membership --mode
	 * lossy|pause|gray|crash. */
	cfg->suspicion_min_mult = 4;
	cfg->suspicion_max_mult = 6;
	cfg->awareness_max = 8;
	cfg->push_pull_interval_ms = 30000;
	cfg->gossip_interval_ms = 200;
	cfg->gossip_fanout = 3;
	cfg->join_retry_ms = 1000;
	cfg->reap_ms = 24u * 3600u * 1000u;
	cfg->max_updates_per_msg = 16;
}

static uint64_t swim_push_pull_interval(const struct swim *s)
{
	uint64_t base = s->cfg.push_pull_interval_ms;
	uint32_t n = s->n_m - s->counts[SWIM_LEFT];
	if (n <= SWIM_PUSH_PULL_SCALE_N)
		return base;
	double mult = ceil(log2((double)n) - log2((double)SWIM_PUSH_PULL_SCALE_N)) + 1.0;
	return base * (uint64_t)mult;
}

struct swim *swim_new(const struct swim_config *cfg, uint64_t initial_incarnation, uint64_t now)
{
	if (cfg == NULL || !swim_str_ok(cfg->name, SWIM_NAME_MAX, true) ||
	    !swim_str_ok(cfg->addr, SWIM_ADDR_MAX, true) || cfg->probe_interval_ms == 0 ||
	    cfg->probe_timeout_ms == 0 || cfg->probe_timeout_ms >= cfg->probe_interval_ms ||
	    cfg->indirect_probes > SWIM_K_MAX || cfg->retransmit_mult == 0 ||
	    cfg->suspicion_min_mult == 0 || cfg->suspicion_max_mult == 0 ||
	    cfg->join_retry_ms == 0 || cfg->max_updates_per_msg == 0 || cfg->awareness_max > 1000 ||
	    initial_incarnation > SWIM_INCARNATION_MAX)
		return NULL;
	struct swim *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	uint64_t seed = cfg->seed ^ ((uint64_t)swim_hash(cfg->name) << 32);
	for (int k = 0; k < 4; k++)
		s->rng[k] = mv_splitmix64(&seed);
	if (cfg->strtab != NULL) {
		s->sp = cfg->strtab;
	} else {
		s->sp = &s->own;
		swim_strtab_init(&s->own);
	}
	name_index_init(&s->nm, &swim_member_index_ops, s);
	s->bc_free = NONE;
	s->su_free = NONE;
	for (int k = 0; k < SWIM_BCAST_BUCKETS; k++)
		s->bc_head[k] = s->bc_tail[k] = NONE;
	s->probe.target = NONE;
	mv_ratelimit_init(&s->refused_rl, SWIM_REFUSED_EVENT_MS);
	s->pf_on = cfg->alive_sign != NULL || cfg->alive_verify != NULL;
	if (cfg->alive_verify != NULL &&
	    (s->pff = calloc(SWIM_PROOF_FAIL_SLOTS, sizeof(*s->pff))) == NULL) {
		swim_free(s);
		return NULL;
	}
	if (swim_member_add(s, cfg->name, cfg->addr, initial_incarnation, now) != 0) {
		swim_free(s);
		return NULL;
	}
	swim_self_sign(s);
	/* Spread the periodic work of nodes started together. */
	s->next_probe_at = now + swim_rand_below(s, cfg->probe_interval_ms);
	s->next_gossip_at = cfg->gossip_interval_ms
	                        ? now + swim_rand_below(s, cfg->gossip_interval_ms)
	                        : UINT64_MAX;
	s->next_push_pull_at = cfg->push_pull_interval_ms
	                           ? now + cfg->push_pull_interval_ms / 2 +
	                                 swim_rand_below(s, cfg->push_pull_interval_ms)
	                           : UINT64_MAX;
	return s;
}

void swim_free(struct swim *s)
{
	if (s == NULL)
		return;
	if (s->sp != &s->own) {
		/* A shared table outlives us: give back every reference we hold. */
		swim_probe_clear(s);
		for (uint32_t r = 0; r < s->n_relay; r++) {
			swim_str_unref(s, s->relay[r].requester);
			swim_str_unref(s, s->relay[r].requester_addr);
			swim_str_unref(s, s->relay[r].target);
		}
		for (uint32_t id = 0; id < s->n_bc_slots; id++)
			if (s->bc[id].transmits != NONE)
				swim_str_unref(s, s->bc[id].origin);
		for (uint32_t id = 0; id < s->n_su_slots; id++) {
			if (s->su[id].member == NONE)
				continue;
			swim_str_unref(s, s->su[id].origin);
			for (uint32_t c = 0; c < s->su[id].n_conf; c++)
				swim_str_unref(s, s->su[id].conf[c]);
			swim_susp_drop_helpers(s, &s->su[id]);
		}
		for (uint32_t i = 0; i < s->n_m; i++) {
			swim_str_unref(s, s->m[i].name);
			swim_str_unref(s, s->m[i].addr);
			swim_str_unref(s, s->m[i].cause);
		}
	}
	for (uint32_t i = 0; s->pf != NULL && i < s->n_m; i++)
		free(s->pf[i]);
	free(s->pff);
	free(s->pf);
	free(s->own.buf);
	free(s->own.ent);
	name_index_free(&s->own.index);
	name_index_free(&s->nm);
	free(s->m);
	free(s->order);
	free(s->heap);
	free(s->bc);
	free(s->su);
	free(s->relay);
	free(s->seeds);
	free(s->out);
	free(s->ev);
	free(s->pick);
	mv_arena_free(&s->out_arena);
	mv_arena_free(&s->ev_arena);
	free(s);
}

/* Common prologue of every mutating call. */
static void swim_enter(struct swim *s)
{
	swim_out_reset_if_drained(s);
	swim_str_compact(s);
	if (s->n_bcast == 0 && s->cap_bc > SWIM_QUEUE_KEEP) {
		/* A burst's broadcasts are all sent: give the pool back (10,000
		 * idle cores must not each keep room for a join storm). */
		free(s->bc);
		s->bc = NULL;
		s->cap_bc = s->n_bc_slots = 0;
		s->bc_free = NONE;
	}
}

static void swim_join_send(struct swim *s)
{
	for (size_t k = 0; k < s->n_seeds; k++) {
		struct swim_msg *m = swim_out_new(s, SWIM_MSG_PUSH_PULL, "", s->seeds[k], 0);
		if (m == NULL)
			return;
		m->join = true;
		swim_full_state(s, m);
	}
}

int swim_join(struct swim *s, const char *const *seed_addrs, size_t n, uint64_t now)
{
	if (s == NULL || seed_addrs == NULL || n == 0)
		return -EINVAL;
	for (size_t k = 0; k < n; k++)
		if (!swim_str_ok(seed_addrs[k], SWIM_ADDR_MAX, true))
			return -EINVAL;
	if (s->m[0].state == SWIM_LEFT)
		return -EINVAL;
	swim_enter(s);
	char(*seeds)[SWIM_ADDR_MAX] = malloc(sizeof(*seeds) * n);
	if (seeds == NULL)
		return -ENOMEM;
	size_t m = 0;
	for (size_t k = 0; k < n; k++)
		if (strcmp(seed_addrs[k], s->cfg.addr) != 0)
			snprintf(seeds[m++], SWIM_ADDR_MAX, "%s", seed_addrs[k]);
	free(s->seeds);
	s->seeds = seeds;
	s->n_seeds = m;
	if (m == 0) {
		/* Only ourselves: we are the first node; nothing to join. */
		s->joining = false;
		return 0;
	}
	s->joining = true;
	swim_bc_queue(s, 0, NONE);
	s->join_backoff = s->cfg.join_retry_ms;
	s->join_next_at = now + s->join_backoff;
	swim_join_send(s);
	return 0;
}

int swim_leave(struct swim *s, uint64_t now)
{
	if (s == NULL)
		return -EINVAL;
	if (s->m[0].state == SWIM_LEFT)
		return -EALREADY;
	swim_enter(s);
	uint64_t inc = s->m[0].incarnation;
	swim_member_set_state(s, 0, SWIM_LEFT, inc < SWIM_INCARNATION_MAX ? inc + 1 : inc, now);
	swim_self_sign(s); /* our proof of leaving: relays carry it */
	swim_event(s, SWIM_EV_MEMBER_LEFT, 0, "left gracefully", 0);
	swim_bc_queue(s, 0, s->m[0].name);
	s->leave_tx = 0;
	s->joining = false;
	if (s->probe.active)
		swim_probe_clear(s);
	return 0;
}

bool swim_leave_done(const struct swim *s)
{
	if (s == NULL || s->m[0].state != SWIM_LEFT)
		return false;
	if (swim_n_live(s) == 0) /* self is LEFT: no live peer to tell */
		return true;
	return s->leave_tx >= swim_retransmit_limit(s);
}

int swim_handle_message(struct swim *s, const struct swim_msg *m, uint64_t now)
{
	if (s == NULL || !swim_msg_ok(m))
		return -EINVAL;
	if (m->to[0] != '\0' && strcmp(m->to, s->cfg.name) != 0)
		return 0;
	if (strcmp(m->from, s->cfg.name) == 0)
		return 0;
	swim_enter(s);
	s->stale_sender = false;
	switch (m->type) {
	case SWIM_MSG_PING:
		/* Updates first, so that the ACK carries our refutation at once;
		 * a PING with news about us gets our state in the ACK for sure. */
		swim_apply_all(s, m, false, now);
		swim_learn_sender(s, m, now);
		swim_send_about(s, SWIM_MSG_ACK, m->from, m->from_addr, m->seq, s->cfg.name,
		                s->cfg.addr, swim_msg_mentions(m, s->cfg.name) ? 0 : NONE);
		break;
	case SWIM_MSG_ACK:
		swim_apply_all(s, m, false, now);
		swim_on_ack(s, m);
		break;
	case SWIM_MSG_PING_REQ:
		swim_apply_all(s, m, false, now);
		swim_learn_sender(s, m, now);
		swim_on_ping_req(s, m, now);
		break;
	case SWIM_MSG_NACK:
		swim_apply_all(s, m, false, now);
		swim_on_nack(s, m, now);
		break;
	case SWIM_MSG_PUSH_PULL: {
		if (m->n_digest > 0) {
			swim_on_digest(s, m);
			break;
		}
		/* A full push-pull (a join, an older peer): answer with our
		 * table as it was, then merge theirs. */
		struct swim_msg *r =
		    swim_out_new(s, SWIM_MSG_PUSH_PULL_REPLY, m->from, m->from_addr, m->seq);
		if (r != NULL)
			swim_full_state(s, r);
		swim_apply_all(s, m, true, now);
		break;
	}
	case SWIM_MSG_PUSH_PULL_REPLY:
		swim_apply_all(s, m, true, now);
		if (m->n_want > 0)
			swim_on_want(s, m);
		if (s->joining)
			swim_join_done(s, m);
		break;
	}
	/* The ACK to a PING already carries our incarnation; anything else
	 * gets a direct unsolicited ACK with it. */
	if (s->stale_sender && m->type != SWIM_MSG_PING && m->type != SWIM_MSG_PUSH_PULL)
		swim_send_to(s, SWIM_MSG_ACK, m->from, m->from_addr, 0, "", "");
	s->stale_sender = false;
	/* A member we still hold DEAD is talking to us: it restarted (or came
	 * back from a partition) and its refutation missed us, which only our
	 * next push-pull would repair. Tell it what we hold: it answers with
	 * its current incarnation straight to us (the stale-suspicion path). */
	uint32_t si = swim_member_lookup(s, m->from);
	if (si != NONE && s->m[si].state == SWIM_DEAD && m->type != SWIM_MSG_PUSH_PULL &&
	    m->type != SWIM_MSG_PUSH_PULL_REPLY)
		swim_send_about(s, SWIM_MSG_ACK, m->from, m->from_addr, 0, "", "", si);
	return 0;
}

static void swim_gossip_round(struct swim *s)
{
	if (s->n_bcast == 0)
		return;
	uint32_t pick[64];
	uint32_t want = s->cfg.gossip_fanout < 64 ? s->cfg.gossip_fanout : 64;
	uint32_t n = swim_random_members(s, pick, want, NONE,
	                                 SWIM_MASK(SWIM_ALIVE) | SWIM_MASK(SWIM_SUSPECT));
	for (uint32_t k = 0; k < n && s->n_bcast > 0; k++) {
		char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX];
		snprintf(to, sizeof(to), "%s", swim_str_get(s, s->m[pick[k]].name));
		snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, s->m[pick[k]].addr));
		swim_send_to(s, SWIM_MSG_ACK, to, to_addr, 0, "", "");
	}
}

static void swim_push_pull_round(struct swim *s)
{
	uint32_t pick;
	/* DEAD members too: that is how a healed partition finds itself. */
	uint32_t n = swim_random_members(s, &pick, 1, NONE,
	                                 SWIM_MASK(SWIM_ALIVE) | SWIM_MASK(SWIM_SUSPECT) |
	                                     SWIM_MASK(SWIM_DEAD));
	if (n == 0)
		return;
	char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX];
	snprintf(to, sizeof(to), "%s", swim_str_get(s, s->m[pick].name));
	snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, s->m[pick].addr));
	struct swim_msg *m = swim_out_new(s, SWIM_MSG_PUSH_PULL, to, to_addr, 0);
	uint32_t buckets = swim_digest_buckets(s);
	uint64_t *d = m ? mv_arena_alloc(&s->out_arena, sizeof(*d) * buckets) : NULL;
	if (d == NULL)
		return;
	swim_digest(s, d, buckets);
	m->digest = d;
	m->n_digest = buckets;
}

/* When our next push-pull round is due: the scaled interval, or in a join
 * storm about a second (see the essay). */
static uint64_t swim_push_pull_next(struct swim *s, uint64_t now)
{
	if (s->learned >= SWIM_STORM_MIN) {
		s->storm = true;
		s->storm_quiet = 0;
	} else if (s->storm && ++s->storm_quiet >= SWIM_STORM_QUIET) {
		/* fewer than SWIM_STORM_MIN learned: a quiet round (a trickle of
		 * joins in a large cluster must not keep us at ~1 s for ever) */
		s->storm = false;
	}
	s->learned = 0;
	if (!s->storm)
		return now + swim_push_pull_interval(s);
	return now + SWIM_STORM_PP_MIN_MS + swim_rand_below(s, SWIM_STORM_PP_SPREAD_MS);
}

static void swim_timer_relays(struct swim *s, uint64_t now)
{
	for (uint32_t r = 0; r < s->n_relay;) {
		struct swim_relay *rl = &s->relay[r];
		if (!rl->nacked && rl->nack_at <= now) {
			char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX], target[SWIM_NAME_MAX];
			snprintf(to, sizeof(to), "%s", swim_str_get(s, rl->requester));
			snprintf(to_addr, sizeof(to_addr), "%s",
			         swim_str_get(s, rl->requester_addr));
			snprintf(target, sizeof(target), "%s", swim_str_get(s, rl->target));
			rl->nacked = true;
			uint64_t seq = rl->seq_in;
			/* The NACK says "I could not reach it either", and carries
			 * what we know of it: perhaps the refutation the requester
			 * missed. */
			swim_send_about(s, SWIM_MSG_NACK, to, to_addr, seq, target, "",
			                swim_member_lookup(s, target));
			continue; /* re-examine: may also have expired */
		}
		if (rl->expire_at <= now) {
			swim_str_unref(s, rl->requester);
			swim_str_unref(s, rl->requester_addr);
			swim_str_unref(s, rl->target);
			s->relay[r] = s->relay[--s->n_relay];
			continue;
		}
		r++;
	}
}

/* Last-chance or verification probe of suspect i: a PING (carrying the
 * suspicion, so it can refute in the ACK) and PING_REQs through k helpers,
 * all with one seq; the window is one protocol period. */
static void swim_check_send(struct swim *s, uint32_t i, bool verify, uint64_t now)
{
	uint32_t pick[SWIM_K_MAX];
	uint32_t n = swim_random_members(s, pick, s->cfg.indirect_probes, i, SWIM_MASK(SWIM_ALIVE));
	struct swim_susp *x = &s->su[s->m[i].susp];
	swim_susp_drop_helpers(s, x);
	x->check = SWIM_CHECK_SENT;
	x->verify = verify;
	x->check_seq = ++s->seq;
	x->check_end = now + swim_scaled(s, s->cfg.probe_interval_ms);
	x->check_helpers = (uint8_t)n;
	x->check_nacks = 0;
	for (uint32_t k = 0; k < n; k++) {
		x->check_helper[k] = s->m[pick[k]].name;
		swim_str_ref(s, x->check_helper[k]);
	}
	uint64_t seq = x->check_seq;
	swim_susp_arm(s, i);
	swim_send_ping(s, i, seq);
	char target[SWIM_NAME_MAX], target_addr[SWIM_ADDR_MAX];
	snprintf(target, sizeof(target), "%s", swim_str_get(s, s->m[i].name));
	snprintf(target_addr, sizeof(target_addr), "%s", swim_str_get(s, s->m[i].addr));
	for (uint32_t k = 0; k < n; k++) {
		char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX];
		snprintf(to, sizeof(to), "%s", swim_str_get(s, s->m[pick[k]].name));
		snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, s->m[pick[k]].addr));
		swim_send_to(s, SWIM_MSG_PING_REQ, to, to_addr, seq, target, target_addr);
	}
}

static void swim_timer_members(struct swim *s, uint64_t now)
{
	char cause[SWIM_CAUSE_MAX];
	while (s->n_heap > 0 && s->heap[0].at <= now) {
		uint32_t i = s->heap[0].member;
		struct swim_member *mb = &s->m[i];
		if (mb->state == SWIM_SUSPECT) {
			struct swim_susp *x = &s->su[mb->susp];
			if (swim_susp_proven(x) && x->check != SWIM_CHECK_ACKED &&
			    x->refused_at + swim_refused_ms(s) <= now) {
				/* Refused us, and refused a helper we asked: the
				 * host is up, its agent is not. */
				size_t at = (size_t)snprintf(
				    cause, sizeof(cause),
				    "connection refused, confirmed after %llu ms by ",
				    (unsigned long long)(now - x->start));
				for (uint32_t k = 0, c = 0;
				     k < x->check_helpers && at < sizeof(cause); k++)
					if (x->refused_nacks & (1u << k))
						at += (size_t)snprintf(
						    cause + at, sizeof(cause) - at, "%s%s",
						    c++ ? "," : "",
						    swim_str_get(s, x->check_helper[k]));
				uint32_t conf = x->n_conf + 1;
				swim_member_set_state(s, i, SWIM_DEAD, mb->incarnation, now);
				swim_event(s, SWIM_EV_MEMBER_DEAD, i, cause, conf);
				swim_bc_queue(s, i, s->m[0].name);
				continue;
			}
			if (x->verify && x->check_end <= now) {
				/* Verification window over. No ACK, and at least
				 * one helper proved we can reach others (its NACK):
				 * our own, independent suspicion. An ACK stays
				 * recorded: the deadline then restarts the clock. */
				x->verify = false;
				if (x->check == SWIM_CHECK_SENT) {
					x->check = SWIM_CHECK_NONE;
					if ((x->check_nacks > 0 || x->check_helpers == 0) &&
					    swim_susp_confirm(s, i, s->cfg.name))
						swim_bc_queue(s, i, s->m[0].name);
				}
				swim_susp_arm(s, i);
				continue;
			}
			if (x->verify && x->check == SWIM_CHECK_SENT && x->n_conf == 0) {
				/* The deadline came first and nobody confirms: the
				 * verification becomes the last-chance probe. */
				x->verify = false;
				swim_susp_arm(s, i);
				continue;
			}
			x->verify = false;
			if (x->check == SWIM_CHECK_ACKED) {
				/* It answered: alive, its refutation is on its way.
				 * Start the clock again rather than kill it (and
				 * void a death reported meanwhile). */
				x->check = SWIM_CHECK_NONE;
				x->dead_heard = false;
				x->start = now;
				swim_susp_arm(s, i);
				continue;
			}
			/* Gray-host rule: while our own probes mostly fail, our
			 * silence says more about us than about the member. We
			 * wait for k others to confirm (or for their verdict)
			 * instead of declaring it DEAD on our own clock. Not when
			 * the verdict is here (a DEAD from others, and our own
			 * last-chance probe failed) nor when the member's host
			 * refused us: neither is our silence. (Holding those
			 * kept a peer that a healed, once-silent host had heard
			 * declared dead SUSPECT there for 2 maximum timeouts.) */
			if (x->n_conf < x->k && !x->dead_heard && !x->refused_self &&
			    swim_poor_health(s) &&
			    now - x->born < (uint64_t)SWIM_GRAY_HOLD_MULT * x->max_ms) {
				x->check = SWIM_CHECK_NONE;
				x->start = now;
				swim_susp_arm(s, i);
				/* Tell it again: a member that missed it (it joined
				 * or rebooted since) can verify it and confirm. */
				swim_bc_queue(s, i, x->origin);
				continue;
			}
			/* Nobody but the origin vouches for this death: one
			 * more full probe before we believe it. */
			if (x->check == SWIM_CHECK_NONE && x->n_conf == 0) {
				swim_check_send(s, i, false, now);
				continue;
			}
			if (x->n_conf == 0 && x->check == SWIM_CHECK_SENT && x->check_helpers > 0 &&
			    x->check_nacks == 0) {
				/* The last-chance probe went through helpers and not
				 * one answered, not even with a NACK: the fault is
				 * most likely ours (we are cut off). A death on our
				 * word alone would spread when we reconnect and kill
				 * a healthy host: keep suspecting, look again later. */
				x->check = SWIM_CHECK_NONE;
				x->start = now;
				swim_awareness_add(s, 1,
				                   "no helper answered our last-chance probe");
				swim_susp_arm(s, i);
				continue;
			}
			uint32_t conf = x->n_conf;
			int len =
			    snprintf(cause, sizeof(cause), "suspicion timeout after %llu ms, ",
			             (unsigned long long)(now - x->start));
			if (x->dead_heard && x->check == SWIM_CHECK_SENT)
				len = snprintf(cause, sizeof(cause),
				               "reported dead by %s, and our own probe failed; ",
				               swim_str_get(s, x->origin));
			if (conf == 0) {
				snprintf(cause + len, sizeof(cause) - (size_t)len,
				         "no confirmations");
			} else {
				size_t at = (size_t)len;
				at += (size_t)snprintf(cause + at, sizeof(cause) - at,
				                       "confirmed by ");
				for (uint32_t c = 0; c < conf && at < sizeof(cause); c++)
					at += (size_t)snprintf(cause + at, sizeof(cause) - at,
					                       "%s%s", c ? "," : "",
					                       swim_str_get(s, x->conf[c]));
			}
			swim_member_set_state(s, i, SWIM_DEAD, mb->incarnation, now);
			swim_event(s, SWIM_EV_MEMBER_DEAD, i, cause, conf);
			swim_bc_queue(s, i, s->m[0].name);
		} else if (mb->state == SWIM_DEAD || mb->state == SWIM_LEFT) {
			snprintf(cause, sizeof(cause), "%s for %llu ms",
			         mb->state == SWIM_DEAD ? "dead" : "left",
			         (unsigned long long)(now - mb->since_ms));
			swim_event(s, SWIM_EV_MEMBER_REAPED, i, cause, 0);
			swim_member_remove(s, i);
		} else {
			swim_heap_del(s, i); /* cannot happen: alive members hold no timer */
		}
	}
}

int swim_peer_refused(struct swim *s, const char *name, uint64_t now)
{
	if (s == NULL || !swim_str_ok(name, SWIM_NAME_MAX, true) || strcmp(name, s->cfg.name) == 0)
		return -EINVAL;
	swim_enter(s);
	/* A helper: the PING we relay for someone was refused. Say so at once
	 * (NACK, refused = true) instead of waiting out the NACK timer. The
	 * suspicion is the requester's; we do not start our own. */
	bool relayed = false;
	uint32_t nid = swim_str_find(s, name);
	for (uint32_t r = 0; nid != NONE && r < s->n_relay; r++) {
		struct swim_relay *rl = &s->relay[r];
		if (rl->target != nid || rl->nacked)
			continue;
		char to[SWIM_NAME_MAX], to_addr[SWIM_ADDR_MAX], target[SWIM_NAME_MAX];
		snprintf(to, sizeof(to), "%s", swim_str_get(s, rl->requester));
		snprintf(to_addr, sizeof(to_addr), "%s", swim_str_get(s, rl->requester_addr));
		snprintf(target, sizeof(target), "%s", swim_str_get(s, rl->target));
		rl->nacked = true;
		relayed = true;
		struct swim_msg *m = swim_send_about(s, SWIM_MSG_NACK, to, to_addr, rl->seq_in,
		                                     target, "", swim_member_lookup(s, target));
		if (m != NULL)
			m->refused = true;
	}
	uint32_t i = swim_member_lookup(s, name);
	if (i == NONE)
		return relayed ? 0 : -ENOENT;
	if (relayed || s->m[0].state == SWIM_LEFT)
		return 0;
	struct swim_member *mb = &s->m[i];
	if (mb->state == SWIM_ALIVE) {
		if (s->probe.active && s->probe.target == mb->name)
			swim_probe_clear(s); /* answered: refused, not silent */
		swim_member_suspect(s, i, mb->incarnation, s->cfg.name, "connection refused", now);
	} else if (mb->state == SWIM_SUSPECT) {
		/* Someone else's suspicion, and we were refused too: our own
		 * independent confirmation. */
		uint32_t susp = mb->susp;
		if (susp != NONE && s->su[susp].refused_self)
			return 0;
		if (swim_susp_confirm(s, i, s->cfg.name))
			swim_bc_queue(s, i, s->m[0].name);
	} else {
		return 0; /* DEAD or LEFT: nothing to learn */
	}
	uint32_t susp = s->m[i].susp;
	if (susp == NONE)
		return 0;
	s->su[susp].refused_self = true;
	/* An immediate probe through k helpers: their refused NACKs are the
	 * confirmation. A check already under way serves. */
	if (s->su[susp].check != SWIM_CHECK_SENT)
		swim_check_send(s, i, true, now);
	return 0;
}

int swim_handle_timer(struct swim *s, uint64_t now)
{
	if (s == NULL)
		return -EINVAL;
	swim_enter(s);
	swim_timer_members(s, now);
	swim_timer_relays(s, now);
	if (s->probe.active && !s->probe.indirect && s->probe.ping_req_at <= now)
		swim_probe_indirect(s);
	if (s->next_probe_at <= now) {
		if (s->probe.active)
			swim_probe_fail(s, now);
		swim_probe_start(s, now);
	}
	if (s->joining && s->join_next_at <= now) {
		char cause[SWIM_CAUSE_MAX];
		uint64_t waited = s->join_backoff;
		s->join_backoff =
		    s->join_backoff * 2 > SWIM_JOIN_BACKOFF_MAX_MS
			? (s->join_backoff > SWIM_JOIN_BACKOFF_MAX_MS ? s->join_backoff
		                                                      : SWIM_JOIN_BACKOFF_MAX_MS)
			: s->join_backoff * 2;
		snprintf(cause, sizeof(cause),
		         "no reply from %zu seed(s) in %llu ms; retrying in %u ms", s->n_seeds,
		         (unsigned long long)waited, s->join_backoff);
		swim_event(s, SWIM_EV_JOIN_FAILED, NONE, cause, 0);
		s->join_next_at = now + s->join_backoff;
		swim_join_send(s);
	}
	if (s->next_gossip_at <= now) {
		swim_gossip_round(s);
		s->next_gossip_at = now + s->cfg.gossip_interval_ms;
	}
	if (s->next_push_pull_at <= now) {
		if (s->m[0].state != SWIM_LEFT)
			swim_push_pull_round(s);
		s->next_push_pull_at = swim_push_pull_next(s, now);
	}
	return 0;
}

uint64_t swim_next_deadline(const struct swim *s)
{
	uint64_t d = s->next_probe_at;
	if (s->probe.active && !s->probe.indirect && s->probe.ping_req_at < d)
		d = s->probe.ping_req_at;
	if (s->next_gossip_at < d)
		d = s->next_gossip_at;
	if (s->next_push_pull_at < d)
		d = s->next_push_pull_at;
	if (s->joining && s->join_next_at < d)
		d = s->join_next_at;
	if (s->n_heap > 0 && s->heap[0].at < d)
		d = s->heap[0].at;
	for (uint32_t r = 0; r < s->n_relay; r++) {
		const struct swim_relay *rl = &s->relay[r];
		uint64_t at = rl->nacked ? rl->expire_at : rl->nack_at;
		if (at < d)
			d = at;
	}
	return d;
}

bool swim_pop_output(struct swim *s, struct swim_msg *out)
{
	if (s->out_head == s->n_out)
		return false;
	*out = s->out[s->out_head++];
	return true;
}

bool swim_pop_event(struct swim *s, struct swim_event *out)
{
	if (s->ev_head == s->n_ev)
		return false;
	*out = s->ev[s->ev_head++];
	return true;
}

uint32_t swim_local_health(const struct swim *s)
{
	return s->awareness;
}
uint64_t swim_claims_refused(const struct swim *s)
{
	return s->refused;
}

uint64_t swim_proofs_checked(const struct swim *s)
{
	return s->proofs_checked;
}

void swim_local_health_add(struct swim *s, uint32_t delta, const char *why)
{
	swim_awareness_add(s, delta > s->cfg.awareness_max ? (int)s->cfg.awareness_max : (int)delta,
	                   why);
}

uint64_t swim_incarnation(const struct swim *s)
{
	return s->m[0].incarnation;
}
const struct swim_config *swim_get_config(const struct swim *s)
{
	return &s->cfg;
}
size_t swim_member_count(const struct swim *s)
{
	return s->n_m;
}

void swim_member_at(const struct swim *s, size_t i, struct swim_member_info *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= s->n_m) {
		out->name = out->addr = out->cause = "";
		return;
	}
	const struct swim_member *mb = &s->m[i];
	out->name = swim_str_get(s, mb->name);
	out->addr = swim_str_get(s, mb->addr);
	out->state = (enum swim_state)mb->state;
	out->incarnation = mb->incarnation;
	out->since_ms = mb->since_ms;
	out->cause = swim_str_get(s, mb->cause);
	out->is_self = i == 0;
}

bool swim_member_find(const struct swim *s, const char *name, struct swim_member_info *out)
{
	if (name == NULL || !swim_str_ok(name, SWIM_NAME_MAX, true))
		return false;
	uint32_t i = swim_member_lookup(s, name);
	if (i == NONE)
		return false;
	swim_member_at(s, i, out);
	return true;
}

uint64_t swim_view_version(const struct swim *s)
{
	return s->view_ver;
}

void swim_state_counts(const struct swim *s, uint32_t counts[4])
{
	for (int k = 0; k < 4; k++)
		counts[k] = s->counts[k];
}

const char *swim_state_name(enum swim_state st)
{
	switch (st) {
	case SWIM_ALIVE:
		return "alive";
	case SWIM_SUSPECT:
		return "suspect";
	case SWIM_DEAD:
		return "dead";
	case SWIM_LEFT:
		return "left";
	}
	return "unknown";
}

const char *swim_msg_type_name(enum swim_msg_type t)
{
	switch (t) {
	case SWIM_MSG_PING:
		return "ping";
	case SWIM_MSG_ACK:
		return "ack";
	case SWIM_MSG_PING_REQ:
		return "ping-req";
	case SWIM_MSG_NACK:
		return "nack";
	case SWIM_MSG_PUSH_PULL:
		return "push-pull";
	case SWIM_MSG_PUSH_PULL_REPLY:
		return "push-pull-reply";
	}
	return "unknown";
}

int swim_raise_incarnation(struct swim *s, uint64_t at_least, const char *cause, uint64_t now)
{
	if (s == NULL || s->m[0].state == SWIM_LEFT)
		return -EINVAL;
	(void)now;
	swim_enter(s);
	uint64_t cur = s->m[0].incarnation;
	if (at_least > SWIM_INCARNATION_MAX)
		at_least = SWIM_INCARNATION_MAX;
	swim_refute(s, at_least > cur + 1 ? at_least - 1 : cur, cause ? cause : "asked for");
	return 0;
}
