"""stub"""
class ArbitrageReport: pass
def arbitrage_report(): pass
def durrleman_g(): pass
