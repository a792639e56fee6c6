"""Simulated users with hidden profiles, following RLPA's role-play rules."""

from training.simulators.base import Message, UserSimulator
from training.simulators.llm import LLMUser
from training.simulators.scripted import ScriptedUser

__all__ = ["LLMUser", "Message", "ScriptedUser", "UserSimulator"]
