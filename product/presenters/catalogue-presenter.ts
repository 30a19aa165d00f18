import type { CatalogueItem } from "../models/catalogue-item.ts";

export function presentItem(item: CatalogueItem, merchantName: string, balance?: number) {
  return {
    id: item.id,
    merchantId: item.merchantId,
    merchantName,
    name: item.name,
    description: item.description,
    pointsCost: item.pointsCost,
    stock: item.stock,
    active: item.active,
    inStock: item.stock > 0,
    affordable: balance === undefined || balance >= item.pointsCost,
    pointsShort: balance === undefined ? 0 : Math.max(0, item.pointsCost - balance),
  };
}
