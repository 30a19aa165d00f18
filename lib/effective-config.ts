import { Document, isScalar } from "yaml";
import { keysFromEnvironment, type PlumConfig } from "./config.ts";

/** A database URL as it may be shown or stored: its password replaced by REDACTED (a URL without one as given). */
export function maskedDatabaseUrl(url: string): string {
  if (!URL.canParse(url) || !new URL(url).password) return url;
  const masked = new URL(url);
  masked.password = "REDACTED";
  return masked.toString();
}

/** A restic repository location as it may be shown or stored: a password in its URL (`rest:https://user:pw@…`) replaced by REDACTED. */
export function maskedRepositoryLocation(location: string): string {
  return location.replace(/(\/\/[^/@:\s]+):[^/@\s]*@/, "$1:REDACTED@");
}

/**
 * The configuration in effect, as YAML a fresh host can take as its plum.yaml: plum.yaml, then the PLUM_*
 * variables that overrode it (each marked with its variable), then the defaults, every key written out. The
 * database password is masked (secrets never go in a set); PLUM_HOME, which is no key, is named in the header.
 */
export function effectiveConfigYaml(config: PlumConfig, heading: string[] = []): string {
  const { home, configFile, ...keys } = config;
  const effective = structuredClone(keys);
  if (effective.database.url) effective.database.url = maskedDatabaseUrl(effective.database.url);
  if (effective.backup.primary) effective.backup.primary = maskedRepositoryLocation(effective.backup.primary);
  if (effective.backup.secondary) effective.backup.secondary = maskedRepositoryLocation(effective.backup.secondary);
  const doc = new Document(effective);
  for (const [key, variable] of Object.entries(keysFromEnvironment(config))) {
    const node = doc.getIn(key.split("."), true);
    if (isScalar(node)) node.comment = ` from ${variable}`;
  }
  doc.commentBefore = [
    ...heading,
    `The configuration in effect: ${configFile}, then the environment variables`,
    'marked "from PLUM_…", then the defaults. PLUM_HOME was ' + `${home}.`,
    "A password in database.url, backup.primary or backup.secondary is masked as REDACTED: put it back before using this file as a plum.yaml.",
  ]
    .map((line) => ` ${line}`)
    .join("\n");
  return doc.toString();
}
