/**
 * Tells whether a connected link goes straight between the peers or through a TURN relay,
 * from the candidate pair that ICE selected.
 *
 * @module link-state
 */

/**
 * Reads the selected candidate pair from a `getStats()` report.
 *
 * @param {RTCStatsReport} report
 * @returns {'direct'|'relayed'|null} `relayed` when either end of the pair is a TURN
 *   relay candidate, `direct` otherwise, `null` when no pair is selected yet.
 */
export function linkStateFromStats(report) {
  let pair = null;
  for (const stats of report.values()) {
    if (stats.type === 'transport' && stats.selectedCandidatePairId) {
      pair = report.get(stats.selectedCandidatePairId) ?? null;
      break;
    }
  }
  if (!pair) {
    // Some browsers mark the pair itself instead of naming it on the transport.
    for (const stats of report.values()) {
      if (stats.type === 'candidate-pair' && stats.selected) {
        pair = stats;
        break;
      }
    }
  }
  if (!pair) return null;
  const local = report.get(pair.localCandidateId);
  const remote = report.get(pair.remoteCandidateId);
  if (!local || !remote) return null;
  return local.candidateType === 'relay' || remote.candidateType === 'relay' ? 'relayed' : 'direct';
}
