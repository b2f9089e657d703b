import { defineSearchAttributeKey } from '@temporalio/common';

// Registered by the dev stack; production: see docs/operations.md.
export const HostIdKey = defineSearchAttributeKey('HostId', 'KEYWORD');
export const HostAddressKey = defineSearchAttributeKey('HostAddress', 'KEYWORD');
export const OnboardingPhaseKey = defineSearchAttributeKey('OnboardingPhase', 'KEYWORD');
export const TunnelIdKey = defineSearchAttributeKey('TunnelId', 'KEYWORD');
/** `fresh` | `stale`: what the last freshness sweep told the host entity (the sweep signals only changes). */
export const HostFreshnessKey = defineSearchAttributeKey('HostFreshness', 'KEYWORD');

/** `temporal server start-dev --search-attribute` arguments and `operator search-attribute create` pairs. */
export const SEARCH_ATTRIBUTES: ReadonlyArray<[string, 'Keyword']> = [
  ['HostId', 'Keyword'],
  ['HostAddress', 'Keyword'],
  ['OnboardingPhase', 'Keyword'],
  ['TunnelId', 'Keyword'],
  ['HostFreshness', 'Keyword'],
];
