import type { Client } from '@temporalio/client';
import type { Keyring } from '../lib/keyring';
import type { Logger } from '../lib/logging';
import type { AppConfig, InventoryConfig } from '../lib/config';

/** Everything activities need from the outside, passed explicitly so tests can give real or fake ones. */
export interface ActivityDeps {
  keyring: Keyring;
  /** InfluxDB as the controller reaches it (verification, tunnel targets) and the write credentials Telegraf gets. */
  influx: AppConfig['influx'];
  /** Telegraf binary shipped to hosts in artifact mode. */
  telegrafArtifact?: string;
  /** For activities that steer other workflows (ensure a tunnel keeper and wait for it). */
  temporal?: { client: Client; tunnelTaskQueue: string; hostTaskQueue?: string };
  log: Logger;
  /** Installs that start close together share one ansible-playbook run (default: batches of 25 within 2 s). */
  installBatch?: { max: number; windowMs: number };
  /** Where inventory sources may be read from (AO_INVENTORY_DIRS, AO_INVENTORY_URLS); absent: nowhere. */
  inventory?: InventoryConfig;
}
