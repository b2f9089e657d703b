// The workflow bundle's entry point: every workflow the worker runs.
export { onboardHost } from './onboard-host';
export { tunnelKeeper } from './tunnel-keeper';
export { smokeTest } from './smoke';
export { hostLifecycle } from './host/host-lifecycle';
export { freshnessSweep } from './host/freshness-sweep';
export { onboardFleet } from './fleet/onboard-fleet';
export { reconcileFleet } from './fleet/reconcile-fleet';
