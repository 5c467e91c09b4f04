"""Policy rules before upload (医疗保障基金使用监督管理条例 art. 38 behaviours and local
limits): rules over a whole stay, parameters from the region's rule set and the
configuration, findings stored for the self-inspection report."""
