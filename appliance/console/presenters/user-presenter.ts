import type { OpsUser } from "../models/ops-models.ts";

export interface PresentedUser {
  id: number;
  username: string;
  role: string;
  mustChangePassword: boolean;
  locked: boolean;
  disabled: boolean;
  createdAt: Date;
}

export function presentUser(user: OpsUser, now = new Date()): PresentedUser {
  return {
    id: user.id,
    username: user.username,
    role: user.role,
    mustChangePassword: user.mustChangePassword,
    locked: !!user.lockedUntil && user.lockedUntil > now,
    disabled: !!user.disabledAt,
    createdAt: user.createdAt,
  };
}
